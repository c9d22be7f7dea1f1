import Foundation
import Postgres
import Retention
import Store
import TestSupport

/// A small multi-tenant schema (conversations → messages → attachments, blobs, versioned
/// documents, keep-only staff) and its registry, for store-level retention tests.
enum Fixture {
    static let schema = TestSchema.sql

    static func bounds(_ standard: String, _ minimum: String, _ maximum: String) -> IntervalBounds {
        // swift-format-ignore: NeverUseForceTry
        // Fixed, valid literals: a failure here is a broken fixture.
        try! IntervalBounds(
            default: RetentionInterval.parse(standard)!, minimum: RetentionInterval.parse(minimum)!,
            maximum: RetentionInterval.parse(maximum)!)
    }

    static func registry(batchSize: Int = 50, grace: Duration = .seconds(3600), cap: Int = 100_000) -> Registry {
        let table = { (name: String) in TableName(schema: "app", name: name) }
        return Registry(
            entityTypes: [
                EntityType(
                    name: "conversations", table: table("conv"), key: ["id"], account: "account_id", clock: "ended_at",
                    predicate: "status = 'closed'", bounds: bounds("30d", "1d", "1y"), batchSize: batchSize,
                    blobs: [BlobReference(column: "rec", store: "blobs")],
                    children: [
                        ChildTable(
                            table: table("msg"), key: ["id"], parent: ["conv_id"],
                            children: [
                                ChildTable(
                                    table: table("att"), key: ["id"], parent: ["msg_id"],
                                    blobs: [BlobReference(column: "blob_id", store: "blobs")])
                            ])
                    ]),
                EntityType(
                    name: "documents", table: table("docs"), key: ["id"], account: "account_id", clock: "saved_at",
                    bounds: bounds("7d", "1d", "1y"), batchSize: batchSize, versions: Versions(item: "item", keep: 2)),
                EntityType(
                    name: "staff", table: table("staff"), key: ["id"], account: "account_id", clock: "updated_at",
                    bounds: bounds("30d", "1d", "1y"), deletes: false),
            ],
            blobStores: [
                BlobStore(
                    name: "blobs", table: table("blobs"), key: "id", account: "account_id", grace: grace,
                    batchSize: 10, capPerRun: cap)
            ])
    }

    /// Creates the schema, compiles and syncs `registry`.
    @discardableResult
    static func prepare(_ connection: Connection, registry: Registry = Fixture.registry()) throws -> CompiledRegistry {
        try connection.executeScript(schema)
        return try compile(connection, registry: registry)
    }

    @discardableResult
    static func compile(_ connection: Connection, registry: Registry) throws -> CompiledRegistry {
        let compiled = try RegistryCatalog.compile(registry, on: connection)
        try RegistrySync.sync(compiled, defaultCheckInterval: .seconds(3600), on: connection)
        return compiled
    }

    /// A conversation `daysAgo` days old (ended), with `messages` messages, each with one
    /// attachment blob; the conversation's recording is a blob too. Ids from `id`.
    static func conversation(
        _ connection: Connection, id: Int64, account: Int64, endedDaysAgo: Double?, messages: Int = 2,
        status: String = "closed"
    ) throws {
        try connection.execute(
            "INSERT INTO app.blobs (id, account_id) VALUES ($1, $2)", [id * 100, account])
        try connection.execute(
            """
            INSERT INTO app.conv (id, account_id, ended_at, status, rec)
            VALUES ($1, $2, now() - $3 * interval '1 day', $4, $5)
            """, [id, account, endedDaysAgo, status, id * 100])
        for m in 0..<Int64(messages) {
            let message = id * 100 + m + 1
            try connection.execute("INSERT INTO app.msg (id, conv_id) VALUES ($1, $2)", [message, id])
            try connection.execute("INSERT INTO app.blobs (id, account_id) VALUES ($1, $2)", [message * 1000, account])
            try connection.execute(
                "INSERT INTO app.att (id, msg_id, blob_id) VALUES ($1, $2, $3)", [message, message, message * 1000])
        }
    }

    /// Runs batches for `account` until one finds nothing; returns the results.
    static func drain(
        _ type: CompiledEntityType, registry: CompiledRegistry, account: String, on connection: Connection
    ) throws -> [RetentionBatchResult] {
        let batch = RetentionBatch(type: type, registry: registry)
        var results: [RetentionBatchResult] = []
        while true {
            let result = try batch.run(account: account, task: nil, worker: nil, on: connection)
            results.append(result)
            if result.status != .deleted || result.roots < type.type.batchSize { return results }
        }
    }
}
