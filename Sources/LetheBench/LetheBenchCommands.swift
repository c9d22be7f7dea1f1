import ArgumentParser
import LetheCLI

/// `lethe demo` and `lethe bench …`, in the order `lethe --help` lists them (after the
/// operator's commands).
package enum LetheBenchCommands {
    package static let all: [any ParsableCommand.Type] = [DemoCommand.self, BenchCommand.self]
}
