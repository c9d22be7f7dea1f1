import ArgumentParser
import Coordinator
import LetheConfiguration
import Logging
import Postgres
import Retention
import ServiceLifecycle
import Store
import UnixSignals
import Worker

/// Runs long-lived services in one `ServiceGroup`: SIGTERM or SIGINT shuts them down
/// gracefully, and when one finishes (`--until-idle`) the others are shut down too.
package enum ServiceRunner {
    package static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map {
                    .init(
                        service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Flags shared by the commands that run workers.
package struct WorkerOptions: ParsableArguments {
    package init() {}

    @Option(help: ArgumentHelp("Tasks run at once (default: worker.concurrency, else 8).", valueName: "n"))
    var concurrency: Int?

    @Flag(
        name: .customLong("poll-only"),
        help: "Do not LISTEN for new tasks; poll every worker.poll_interval (for PgBouncer transaction pooling).")
    var pollOnly = false

    package func validate() throws {
        if let concurrency, concurrency < 1 {
            throw ValidationError("--concurrency \(concurrency) is not allowed; expected a whole number of at least 1")
        }
    }
}

/// `lethe worker`
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run workers: claim due tasks and run them.",
        discussion: """
            Claims due tasks in batches (FOR UPDATE SKIP LOCKED), runs up to --concurrency at \
            once, extends their leases by heartbeat and wakes on NOTIFY (polling as a fallback). \
            SIGTERM or SIGINT drains: no new claims; tasks in hand finish within \
            worker.shutdown_grace or are released to the queue.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var metrics: MetricsOptions
    @Flag(name: .customLong("until-idle"), help: "Exit 0 once nothing is due, queued or running.")
    var untilIdle = false

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.worker")
        let address = try metrics.address(context)
        let settings = try LetheServices.workerConfiguration(context, options: worker, untilIdle: untilIdle)
        try await LetheServices.requireCompatibleSchema(context)
        let pool = try await LetheServices.workerPool(context, configuration: settings)
        try await ServiceRunner.run(
            LetheServices.observed([pool], context, address: address, queueGauges: false), logger: context.logger)
    }
}

/// `lethe coordinator`
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the scheduler (leader-elected): enqueue due work, rescue and prune.",
        discussion: """
            Any number may run. The one holding the leader advisory lock enqueues due \
            schedules, fails tasks whose lease expired (so they run elsewhere) and prunes old \
            finished tasks; the others take over within coordinator.tick_interval of its death.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var metrics: MetricsOptions
    @Flag(name: .customLong("until-idle"), help: "Exit 0 once nothing is due, queued or running.")
    var untilIdle = false

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.coordinator")
        let address = try metrics.address(context)
        let coordinator = try await LetheServices.leader(context, untilIdle: untilIdle, by: "lethe coordinator")
        try await ServiceRunner.run(
            LetheServices.observed([coordinator], context, address: address, queueGauges: true),
            logger: context.logger)
    }
}

/// `lethe run`
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a coordinator and workers in one process.",
        discussion: """
            On a terminal (standard error, else standard output), a progress line is redrawn \
            in place once a second: tasks this process ran, rows it deleted per second and in \
            all, the queue's backlog (tasks due and running, every worker) and the time since \
            the start; the last one stays when the run ends. Not on a terminal, nothing is added.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var metrics: MetricsOptions
    @Flag(name: .customLong("until-idle"), help: "Exit 0 once nothing is due, queued or running.")
    var untilIdle = false

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.run")
        let address = try metrics.address(context)
        let settings = try LetheServices.workerConfiguration(context, options: worker, untilIdle: untilIdle)
        let coordinator = try await LetheServices.leader(context, untilIdle: untilIdle, by: "lethe run")
        let pool = try await LetheServices.workerPool(context, configuration: settings)
        // On a terminal, a progress line; first in the group, so shut down last.
        let progress = RunProgressReporter.forTerminal(pool: pool, conninfo: context.conninfo)
        var services = LetheServices.observed([coordinator, pool], context, address: address, queueGauges: true)
        if let progress { services.insert(progress, at: 0) }
        try await ServiceRunner.run(services, logger: context.logger)
    }
}

/// The services a command runs, built from its context.
package enum LetheServices {
    /// Every task kind this build of Lethe can run.
    static let kinds = TaskKind.builtIn.map(\.rawValue)

    /// The process's throttle cache (`throttle.*`): shared by its retention handlers and its
    /// pool, which records the throttle state in `lethe.workers`.
    static func healthMonitor(_ context: CommandContext) throws -> HealthMonitor {
        HealthMonitor(
            settings: try context.configuration.throttleSettings(path: context.configurationPath),
            logger: context.logger)
    }

    /// The handlers of `kinds`.
    static func handlers(
        _ context: CommandContext, registry: CompiledRegistry, monitor: HealthMonitor
    ) throws -> [any TaskHandler] {
        let timeouts = try context.configuration.deletionTimeouts(path: context.configurationPath)
        var archive = try context.configuration.archiveOptions()
        archive.deletionTimeouts = timeouts
        let (maxBatches, archiveSettings) = (context.configuration.maxBatches, archive)
        // One throttle cache and one set of batch sizes per process, kept across registry reloads.
        let sizer = BatchSizer(target: monitor.settings.targetBatchDuration)
        let load: @Sendable (Connection) throws -> CompiledRegistry = { try RegistryInForce.load(on: $0) }
        // Each registry-driven handler follows the registry in force (a sync while this runs).
        return [
            NoopHandler(),
            RegistryReloadingHandler(registry: registry, load: load) {
                RetentionHandler(
                    registry: $0, maxBatches: maxBatches, timeouts: timeouts, monitor: monitor, sizer: sizer)
            },
            RegistryReloadingHandler(registry: registry, load: load) {
                OrphanGCHandler(registry: $0, timeouts: timeouts)
            },
            RegistryReloadingHandler(registry: registry, load: load) {
                ArchiveHandler(registry: $0, settings: archiveSettings)
            },
        ]
    }

    /// Worker settings from the file and the flags, checked before anything connects.
    package static func workerConfiguration(
        _ context: CommandContext, options: WorkerOptions, untilIdle: Bool
    ) throws
        -> WorkerConfiguration
    {
        // Refused before anything connects.
        _ = try context.configuration.deletionTimeouts(path: context.configurationPath)
        _ = try context.configuration.throttleSettings(path: context.configurationPath)
        _ = try context.configuration.archiveOptions()  // `run` syncs the registry before it builds handlers
        return try context.configuration.workerConfiguration(
            concurrency: options.concurrency, untilIdle: untilIdle, pollOnly: options.pollOnly)
    }

    package static func workerPool(
        _ context: CommandContext, configuration: WorkerConfiguration, registry: CompiledRegistry
    ) throws -> WorkerPool {
        let monitor = try healthMonitor(context)
        return WorkerPool(
            conninfo: context.conninfo, configuration: configuration,
            handlers: try handlers(context, registry: registry, monitor: monitor),
            queue: context.configuration.taskQueue(), logger: context.logger, version: LetheVersion.current,
            monitor: monitor)
    }

    /// Runs `throttle.replication_lag_query` once: one that fails or returns anything but one
    /// number is a configuration error (exit 2) naming the key, before any task is claimed.
    static func checkLagQuery(_ context: CommandContext) async throws {
        let settings = try context.configuration.throttleSettings(path: context.configurationPath)
        guard settings.limits.replicationLag != nil else { return }
        let query = settings.lagQuery
        do {
            try await context.withDatabase(name: "lethe-throttle") { try DatabaseHealth.checkLagQuery(query, on: $0) }
        } catch let error as LagQueryShape {
            throw UsageError(
                "configuration file \(context.configurationPath ?? "(none)"): key throttle.replication_lag_query: \(error)"
            )
        } catch let error as PostgresError where error.sqlState != nil {
            throw UsageError(
                "configuration file \(context.configurationPath ?? "(none)"): key throttle.replication_lag_query "
                    + "failed: \(error)")
        }
    }

    /// Refuses (exit 1) a schema that is not migrated to exactly what this binary knows: the
    /// embedded migrations, or the directory the configuration names.
    static func requireCompatibleSchema(_ context: CommandContext) async throws {
        let known = try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory).files
        if let problem = try await context.withDatabase(
            name: "lethe-schema",
            { connection in
                try SchemaCompatibility.check(connection, known: known)
            })
        {
            throw problem
        }
    }

    /// `services`, behind the metrics endpoint when `address` is set: they start once it
    /// listens. `queueGauges`: this process also exports the queue depth (coordinators).
    static func observed(
        _ services: [any Service], _ context: CommandContext, address: MetricsAddress?, queueGauges: Bool
    ) -> [any Service] {
        guard let address else { return services }
        let server = ObservabilityServer(
            address: address, checks: .standard(context),
            queue: queueGauges ? QueueGauges(conninfo: context.conninfo) : nil, logger: context.logger)
        return [server] + services.map { AfterListening(gate: server.gate, service: $0) }
    }

    /// The coordinator without the leader's registry check: what the demo runs.
    package static func coordinator(_ context: CommandContext, untilIdle: Bool) throws -> CoordinatorService {
        try coordinator(context, untilIdle: untilIdle, registryTick: nil)
    }

    /// The worker pool of `lethe worker` and `lethe run`: its handlers follow the registry in force.
    static func workerPool(_ context: CommandContext, configuration: WorkerConfiguration) async throws -> WorkerPool {
        try await checkLagQuery(context)
        let registry = try await context.registry()
        return try workerPool(context, configuration: configuration, registry: registry)
    }

    /// The coordinator of `lethe coordinator` and `lethe run`: its settings are checked before
    /// the registry is synced `by` the command, and as leader it checks the registry each tick.
    static func leader(
        _ context: CommandContext, untilIdle: Bool, by command: String
    ) async throws -> CoordinatorService {
        // Bad settings exit 2 before any sync.
        _ = try context.configuration.coordinatorConfiguration(untilIdle: untilIdle)
        try await requireCompatibleSchema(context)
        let registryTick = try await context.syncRegistryAsCoordinator(by: command)
        return try coordinator(context, untilIdle: untilIdle, registryTick: registryTick)
    }

    /// `registryTick`: the leader's registry check (coordinator and run; not the demo).
    static func coordinator(
        _ context: CommandContext, untilIdle: Bool, registryTick: RegistryTick?
    ) throws -> CoordinatorService {
        let settings = context.configuration
        let (id, backlog) = backlogRefresher(context)
        return CoordinatorService(
            conninfo: context.conninfo, configuration: try settings.coordinatorConfiguration(untilIdle: untilIdle),
            queue: settings.taskQueue(),
            ticks: [
                RetentionTick(
                    schedule: RetentionSchedule(
                        orphanInterval: settings.orphanInterval, maxAttempts: settings.taskQueue().defaultMaxAttempts),
                    noticeInterval: settings.noticeInterval),
                ArchiveTick(schedule: ArchiveSchedule(maxAttempts: settings.taskQueue().defaultMaxAttempts)),
                backlog,
            ] + (registryTick.map { [$0] } ?? []),
            logger: context.logger, version: LetheVersion.current, id: id)
    }
}
