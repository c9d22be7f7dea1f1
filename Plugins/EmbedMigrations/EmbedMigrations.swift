import Foundation
import PackagePlugin

/// Embeds the package's top-level `migrations/*.sql` into the target it is applied to, as
/// `EmbeddedMigrations.files`. The directory is listed at every build, so a new file is
/// embedded with no edit anywhere else; its bytes are copied exactly, so a checksum taken
/// from the binary equals one taken from the file.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "migrations")
        let inputs = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
            .map { directory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations+Files.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) migrations",
                executable: try context.tool(named: "MigrationEmbedder").url,
                // The file list is in the arguments, so adding or removing a file reruns it.
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
