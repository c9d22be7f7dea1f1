import Postgres
import TestSupport

/// Fills a generated schema with tenants' rows: ids that collide across tenants (and shards),
/// clocks spread over three years with NULLs and future values, guards, versions, and blobs
/// shared within and across accounts.
struct DataWriter {
    var schema: SchemaModel
    var random: SeededGenerator
    /// The database's now, microseconds since 1970: clocks are placed around it.
    var now: Int64

    private var counters: [String: Int] = [:]
    private var blobs: [(account: String, id: Int)] = []
    private var nextBlob = 1
    private var blobRows: [String] = []

    init(schema: SchemaModel, seed: UInt64, now: Int64) {
        self.schema = schema
        self.random = SeededGenerator(seed: seed)
        self.now = now
    }

    /// One row of a table: the literals of its columns by name.
    private typealias GeneratedRow = (account: String, values: [String: String])

    mutating func populate(accounts: [String], on connection: Connection) throws {
        for type in schema.types {
            var rows: [[GeneratedRow]] = []
            for (index, table) in type.tables.enumerated() {
                var tableRows: [GeneratedRow] = []
                if let parent = table.parentIndex {
                    for parentRow in rows[parent] {
                        let count = Int.random(in: 0...(table.isJoin ? 2 : 3), using: &random)
                        for n in 0..<count {
                            tableRows.append(child(table, n, under: parentRow, parent: type.tables[parent]))
                        }
                    }
                } else {
                    for account in accounts {
                        var used: Set<Int64> = []
                        for _ in 0..<Int.random(in: 8...25, using: &random) {
                            tableRows.append(root(table, of: type, account: account, used: &used))
                        }
                    }
                }
                rows.append(tableRows)
                try insert(tableRows, into: table, of: type, index: index, on: connection)
            }
        }
        for account in accounts where Bool.random(using: &random) { _ = newBlob(account) }  // orphans
        if !blobRows.isEmpty {
            try connection.execute("INSERT INTO app.blobs (id, account_id) VALUES " + blobRows.joined(separator: ", "))
        }
    }

    private mutating func insert(
        _ rows: [GeneratedRow], into table: TableModel, of type: EntityModel, index: Int, on connection: Connection
    )
        throws
    {
        guard let first = rows.first else { return }
        let columns = first.values.keys.sorted()
        let values = rows.map { row in "(" + columns.map { row.values[$0]! }.joined(separator: ", ") + ")" }
        try connection.execute(
            "INSERT INTO \(table.quoted) (\(columns.map(SQLIdentifier.quote).joined(separator: ", "))) VALUES "
                + values.joined(separator: ", "))
    }

    private func accountLiteral(_ account: String) -> String {
        schema.accountType == "bigint" ? account : "'\(account)'"
    }

    /// The next id of `table` for this account (ids restart per tenant or shard where the key allows).
    private mutating func nextID(_ table: TableModel, account: String, shard: Int) -> Int {
        let scope =
            switch table.shape {
            case .single: table.label
            case .withAccount: "\(table.label)/\(account)"
            case .sharded: "\(table.label)#\(shard)"
            }
        counters[scope, default: 0] += 1
        return counters[scope]!
    }

    private mutating func keyedValues(_ table: TableModel, account: String) -> [String: String] {
        var values: [String: String] = [:]
        if let column = table.account { values[column] = accountLiteral(account) }
        let shard = Int.random(in: 1...2, using: &random)
        if let column = table.shardColumn { values[column] = "\(shard)" }
        if let id = table.idColumn { values[id] = table.keyType.literal(nextID(table, account: account, shard: shard)) }
        if let blob = table.blobColumn { values[blob] = blobReference(account) }
        return values
    }

    private mutating func root(
        _ table: TableModel, of type: EntityModel, account: String, used: inout Set<Int64>
    ) -> GeneratedRow {
        var values = keyedValues(table, account: account)
        values["status"] = "'\(["open", "closed", "closed", "archived"].randomElement(using: &random)!)'"
        values["pinned"] = Double.random(in: 0..<1, using: &random) < 0.2 ? "true" : "false"
        if type.versions != nil { values["item"] = "\(Int.random(in: 1...4, using: &random))" }
        values[type.clock] = clock(type, used: &used)
        return (account, values)
    }

    private mutating func child(
        _ table: TableModel, _ n: Int, under parentRow: GeneratedRow, parent: TableModel
    ) -> GeneratedRow {
        var values = table.isJoin ? [:] : keyedValues(table, account: parentRow.account)
        if let column = table.account { values[column] = accountLiteral(parentRow.account) }
        for (column, parentColumn) in zip(table.parentColumns, parent.keyColumns) {
            values[column] = parentRow.values[parentColumn]!
        }
        if table.isJoin { values["user_id"] = "\(n + 1)" }
        return (parentRow.account, values)
    }

    /// A clock around now: some NULL, some in the future, many recent, the rest over 3 years.
    /// Versioned types get distinct days, so "newest" never depends on a tie-break.
    private mutating func clock(_ type: EntityModel, used: inout Set<Int64>) -> String {
        let day: Int64 = 86_400_000_000
        let p = Double.random(in: 0..<1, using: &random)
        if type.versions == nil && p < 0.08 { return "NULL" }
        var age: Int64 =
            switch p {
            case ..<0.13: -Int64.random(in: 0...(30 * day), using: &random)
            case ..<0.25: Int64.random(in: 0...(10 * day), using: &random)
            case ..<0.55: Int64.random(in: 0...(90 * day), using: &random)
            default: Int64.random(in: 0...(1095 * day), using: &random)
            }
        if type.versions != nil {
            while used.contains(age / day) { age += day }
            used.insert(age / day)
        }
        let timestamp = "to_timestamp(\(Double(now - age) / 1_000_000))"
        switch type.clockType {
        case .timestamptz: return timestamp
        case .timestamp, .precise: return "(\(timestamp) AT TIME ZONE 'UTC')"
        case .date: return "(\(timestamp) AT TIME ZONE 'UTC')::date"
        }
    }

    /// A new blob of the account, one of its own again, another account's, or none.
    private mutating func blobReference(_ account: String) -> String {
        let p = Double.random(in: 0..<1, using: &random)
        let own = blobs.filter { $0.account == account }
        let others = blobs.filter { $0.account != account }
        if p < 0.1 { return "NULL" }
        if p < 0.25, let shared = own.randomElement(using: &random) { return "\(shared.id)" }
        if p < 0.35, let foreign = others.randomElement(using: &random) { return "\(foreign.id)" }
        return "\(newBlob(account))"
    }

    private mutating func newBlob(_ account: String) -> Int {
        let id = nextBlob
        nextBlob += 1
        blobs.append((account, id))
        blobRows.append("(\(id), \(accountLiteral(account)))")
        return id
    }
}
