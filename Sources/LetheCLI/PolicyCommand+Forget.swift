import ArgumentParser
import LetheConfiguration
import Postgres
import Store

extension PolicyCommand {
    /// `lethe policy forget TYPE`: a type that left the configuration stops counting as a
    /// reference to blobs. Until then its rows' blob columns keep those blobs from orphan GC.
    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget an entity type that left the configuration: its blob columns stop protecting blobs.",
            discussion: """
                A type removed from entity_types stays in lethe.entity_types, inactive, and the \
                blob columns of its rows still count as references, so orphan GC never deletes a \
                blob its rows point to. Forget it once those rows no longer matter. Refused for a \
                type that is still configured.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The entity type's name.") var type: String

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.policy")
            let name = type
            do {
                try await context.withDatabase(name: "lethe-policy") { connection in
                    try PolicyAdministration().forgetEntityType(name, on: connection)
                }
            } catch let error as PostgresError
                where ["22023", "55006"].contains(error.sqlState?.rawValue ?? "")
            {
                throw UsageError(error.message)
            }
            print("forgot entity type \(name): its blob columns no longer count as references")
        }
    }
}
