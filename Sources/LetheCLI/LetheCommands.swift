import ArgumentParser

/// The operator's commands, in the order `lethe --help` lists them; the `lethe` executable
/// puts them under its root command, before the benchmarks' and the demo's.
package enum LetheCommands {
    package static let all: [any ParsableCommand.Type] = [
        MigrateCommand.self, CoordinatorCommand.self, WorkerCommand.self, RunCommand.self, TaskCommand.self,
        AccountCommand.self, PolicyCommand.self, ArchiveCommand.self, StatusCommand.self,
    ]
}

/// The version `lethe --version` prints.
package enum LetheVersion {
    package static let current = "0.1.0"
}
