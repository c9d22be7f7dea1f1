import Postgres

/// The objects schema `lethe` holds now, read from the system catalog in the terms of
/// `MigrationSignature`: what `--baseline` compares a schema applied by another tool against.
public struct SchemaCatalog: Sendable {
    public var objects: Set<MigrationSignature.Object> = []
    /// Every body (`prosrc`) of each function, overloads apart by argument count.
    public var bodies: [MigrationSignature.Object: Set<String>] = [:]

    /// Reads the catalog; an absent schema reads as empty.
    public static func read(_ connection: Connection) throws -> SchemaCatalog {
        var catalog = SchemaCatalog()
        // Indexes that back a constraint (primary keys, UNIQUE) come with their table.
        for row in try connection.query(
            """
            SELECT c.relname, c.relkind::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'lethe' AND c.relkind IN ('r', 'p', 'v', 'm', 'i')
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
            """)
        {
            let (name, kind) = try row.decode((String, String).self)
            switch kind {
            case "v", "m": catalog.objects.insert(.view(name))
            case "i": catalog.objects.insert(.index(name))
            default: catalog.objects.insert(.table(name))
            }
        }
        for row in try connection.query(
            """
            SELECT c.relname, a.attname FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'lethe' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
            """)
        {
            let (table, column) = try row.decode((String, String).self)
            catalog.objects.insert(.column(table: table, column: column))
        }
        for row in try connection.query(
            """
            SELECT c.relname, t.tgname FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'lethe' AND NOT t.tgisinternal
            """)
        {
            let (table, name) = try row.decode((String, String).self)
            catalog.objects.insert(.trigger(table: table, name: name))
        }
        for row in try connection.query(
            """
            SELECT p.proname, p.pronargs::int, p.prosrc FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'lethe'
            """)
        {
            let (name, arguments, body) = try row.decode((String, Int, String).self)
            let function = MigrationSignature.Object.function(name, arguments: arguments)
            catalog.objects.insert(function)
            catalog.bodies[function, default: []].insert(body)
        }
        return catalog
    }

    /// What `signature` expects and this schema lacks: missing objects, and functions whose
    /// body differs from the one the migrations define. Each with the migration version.
    public func differences(from signature: MigrationSignature) -> [(version: Int, problem: String)] {
        var problems: [(version: Int, problem: String)] = []
        for (object, version) in signature.objects.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            if !objects.contains(object) {
                problems.append((version, "missing \(object)"))
            } else if let body = signature.bodies[object], !(bodies[object] ?? []).contains(body) {
                problems.append((version, "\(object) has a different body"))
            }
        }
        return problems
    }
}
