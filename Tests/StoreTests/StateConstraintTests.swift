import Postgres
import Retention
import TestSupport
import Testing

/// The CHECK constraints of the migrated schema list exactly the states of the machines in
/// `Retention`: a state added on one side only fails here.
@Suite("State machines against the schema's CHECK constraints")
struct StateConstraintTests {
    /// The string literals of the CHECK constraints on `table`'s `column`.
    static func checkedValues(_ table: String, _ column: String, on connection: Connection) throws -> Set<String> {
        let definitions = try connection.query(
            """
            SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
            WHERE c.contype = 'c' AND c.conrelid = $1::regclass AND a.attname = $2
            """, [table, column]
        ).map { try $0.decode(String.self, at: 0) }
        #expect(definitions.count == 1, "\(table).\(column): \(definitions)")
        // e.g. CHECK ((state = ANY (ARRAY['available'::text, 'running'::text, …])))
        var values: Set<String> = []
        for definition in definitions {
            let parts = definition.split(separator: "'", omittingEmptySubsequences: false)
            for index in stride(from: 1, to: parts.count, by: 2) { values.insert(String(parts[index])) }
        }
        return values
    }

    @Test func checkConstraintsListTheMachinesStates() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            #expect(
                try Self.checkedValues("lethe.tasks", "state", on: connection)
                    == Set(TaskState.allCases.map(\.rawValue)))
            #expect(
                try Self.checkedValues("lethe.archive_jobs", "state", on: connection)
                    == Set(ArchiveJobState.allCases.map(\.rawValue)))
            #expect(
                try Self.checkedValues("lethe.archive_files", "status", on: connection)
                    == Set(ArchiveFileState.allCases.map(\.rawValue)))
        }
    }
}
