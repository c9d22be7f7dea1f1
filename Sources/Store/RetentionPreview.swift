import Foundation
import Postgres

/// What a retention run would delete for one account and type now, without deleting.
public struct RetentionPreview: Sendable {
    public var entityType: String
    /// Rows per table (`app.conversations`, then children), in tree order.
    public var rows: [(table: String, count: Int)]
    public var oldest: Date?
    public var newest: Date?

    /// Counts the account's expired rows of `type` and their children (read only).
    public static func compute(
        _ type: CompiledEntityType, account: String, on connection: Connection
    ) throws
        -> RetentionPreview
    {
        let row = try connection.query(type.previewSQL, [account])[0]
        var rows: [(String, Int)] = []
        for (index, table) in type.tables.enumerated() {
            rows.append((table.label, try row.decode(Int.self, at: index + 2)))
        }
        return RetentionPreview(
            entityType: type.name, rows: rows, oldest: try row.decode(Date?.self, at: 0),
            newest: try row.decode(Date?.self, at: 1))
    }
}
