import Coordinator
import Logging
import Postgres
import Retention
import Store
import Synchronization

/// The leader's registry check, every `coordinator.registry_check_interval`: when the
/// coordinator's configuration file changed since it last looked, its registry is synced
/// if the differences are safe, else refused and each logged at warning level (the
/// registry in force stays). When someone else synced meanwhile (`lethe policy sync`), it
/// only reports how its file differs: a confirmed sync is not undone by an unchanged file.
package final class RegistryTick: SchedulerTick, Sendable {
    package let name = "registry check"
    private let path: String?
    private let interval: Duration
    private let defaultCheckInterval: Duration
    private let command: String
    private let logger: Logger
    private let state: Mutex<State>

    struct State {
        var lastCheck: ContinuousClock.Instant
        /// The registry text of the file when last looked at.
        var fileSHA: String
        /// The registry in force when last looked at (nil: none).
        var inForceSHA: String?
    }

    /// `fileSHA` and `inForceSHA` as the start-up sync left them.
    init(
        path: String?, interval: Duration, defaultCheckInterval: Duration, command: String, logger: Logger,
        fileSHA: String, inForceSHA: String?
    ) {
        self.path = path
        self.interval = interval
        self.defaultCheckInterval = defaultCheckInterval
        self.command = command
        self.logger = logger
        state = Mutex(State(lastCheck: .now, fileSHA: fileSHA, inForceSHA: inForceSHA))
    }

    /// The check that follows the coordinator's start-up sync (`report`) of `configuration`,
    /// read from `path`; the report is logged first.
    package convenience init(
        after report: RegistryInForce.SyncReport, configuration: Configuration, path: String?, command: String,
        logger: Logger
    ) {
        report.log(configurationPath: path, logger: logger)
        let fileSHA = RegistryText.sha256(configuration.registryText)
        self.init(
            path: path,
            interval: configuration.duration("coordinator.registry_check_interval") ?? .seconds(60),
            defaultCheckInterval: configuration.checkInterval, command: command, logger: logger, fileSHA: fileSHA,
            inForceSHA: report.applied ? fileSHA : report.previous?.sha256)
    }

    package func tick(on connection: Connection) throws -> Int {
        let due = state.withLock { state in
            guard ContinuousClock.now - state.lastCheck >= interval else { return false }
            state.lastCheck = .now
            return true
        }
        guard due, let path else { return 0 }
        let configuration = try Configuration.load(path: path)
        let fileSHA = RegistryText.sha256(configuration.registryText)
        let (lastFile, lastInForce) = state.withLock { ($0.fileSHA, $0.inForceSHA) }
        if fileSHA != lastFile {
            let compiled: CompiledRegistry
            do {
                compiled = try RegistryCatalog.compile(configuration.registry, on: connection)
            } catch let error as RegistryError {
                throw UsageError("configuration file \(path): \(error)")
            }
            let report = try RegistryInForce.sync(
                compiled, text: configuration.registryText, configPath: path, by: command, confirm: false,
                defaultCheckInterval: defaultCheckInterval, on: connection)
            report.log(configurationPath: path, logger: logger)
            let inForce = report.applied ? RegistryText.sha256(configuration.registryText) : report.previous?.sha256
            state.withLock {
                $0.fileSHA = fileSHA
                $0.inForceSHA = inForce
            }
            return 0
        }
        let current = try RegistrySource.current(on: connection)
        guard let current, current.sha256 != lastInForce else { return 0 }
        state.withLock { $0.inForceSHA = current.sha256 }
        guard current.sha256 != fileSHA else { return 0 }
        let old = try RegistryText.parse(current.text, source: RegistryInForce.label(current))
        let changes = RegistryChanges.between(old, configuration.registry)
        logger.notice(
            "the registry in force changed (synced by \(current.origin)); this coordinator's file \(path) differs from it"
        )
        for change in changes { logger.notice("registry difference: \(change)") }
        return 0
    }
}

extension RegistryInForce.SyncReport {
    /// Logs what a sync from `configurationPath` did: each change synced at notice level, or,
    /// when it was refused, why and each difference at warning level.
    func log(configurationPath: String?, logger: Logger) {
        let file = configurationPath ?? "(no configuration file)"
        if applied {
            if previous == nil {
                logger.notice("synced the entity-type registry from \(file) into an empty registry")
            } else if !changes.isEmpty {
                logger.notice(
                    "the configuration \(file) differed from the registry in force; synced it",
                    metadata: ["changes": .array(changes.map { .string($0.text) })])
                for change in changes { logger.notice("registry change: \(change.text)") }
            }
            return
        }
        let origin = previous?.origin ?? "?"
        logger.warning(
            """
            refused to sync the entity-type registry from \(file): it differs from the registry in force \
            (synced by \(origin)) in ways that need `lethe policy sync --confirm`; running on the registry in force
            """)
        for change in changes {
            logger.warning("registry difference: \(change)")
        }
    }
}
