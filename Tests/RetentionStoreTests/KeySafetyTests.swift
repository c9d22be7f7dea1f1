import ArchiveFormat
import Foundation
import Postgres
import Retention
import TestSupport
import Testing

@testable import Store

/// Keys on schemas shaped like real multi-tenant ones: ids that restart per tenant,
/// composite keys, join tables, clocks with a precision, predicates that try to escape,
/// account ids that alias. Every case deletes exactly the account's expired rows.
@Suite struct KeySafetyTests {
    /// Tenants 1 and 2 with the same ids (PRIMARY KEY (account_id, id)) in every table.
    static let schema = """
        CREATE SCHEMA app;
        CREATE TABLE app.blobs (account_id bigint, id bigint, PRIMARY KEY (account_id, id));
        CREATE TABLE app.conv (account_id bigint, id bigint, closed_at timestamptz(0), rec bigint,
                               PRIMARY KEY (account_id, id));
        CREATE TABLE app.msg (account_id bigint, conv_id bigint, id bigint, sent_at timestamp(3),
                              PRIMARY KEY (account_id, id));
        CREATE TABLE app.members (account_id bigint, conv_id bigint, user_id bigint,
                                  PRIMARY KEY (account_id, conv_id, user_id));
        CREATE TABLE app.flat (account_id bigint, id bigint, closed_at timestamp(3), PRIMARY KEY (account_id, id));
        """

    static func bounds() -> IntervalBounds { Fixture.bounds("30d", "1d", "1y") }

    /// Conversations keyed `key` (`["id"]` relies on the account column to be unique), with
    /// messages and a keyless members join table under them.
    static func registry(
        key: [String], parent: [String] = ["account_id", "conv_id"], predicate: String? = nil
    )
        -> Registry
    {
        let table = { (name: String) in TableName(schema: "app", name: name) }
        return Registry(
            entityTypes: [
                EntityType(
                    name: "conversations", table: table("conv"), key: key, account: "account_id", clock: "closed_at",
                    predicate: predicate, bounds: bounds(), batchSize: 2,
                    blobs: [BlobReference(column: "rec", store: "blobs")],
                    children: [
                        ChildTable(table: table("msg"), key: ["id"], parent: parent, account: "account_id"),
                        ChildTable(table: table("members"), key: nil, parent: parent),
                    ]),
                EntityType(
                    name: "flat", table: table("flat"), key: ["id"], account: "account_id", clock: "closed_at",
                    bounds: bounds(), batchSize: 10),
            ],
            blobStores: [BlobStore(name: "blobs", table: table("blobs"), key: "id", account: "account_id")])
    }

    /// Both tenants get conversations 1 (expired for `expiredFor`) and 2 (recent), each with
    /// a message, two members and a recording blob, all with the same ids.
    static func seed(_ connection: Connection, expiredFor accounts: [Int64]) throws {
        for account: Int64 in [1, 2] {
            let days = accounts.contains(account) ? 400.0 : 5.0
            try connection.execute(
                """
                INSERT INTO app.blobs VALUES ($1, 10), ($1, 20);
                """.replacingOccurrences(of: "$1", with: String(account)))
            try connection.executeScript(
                """
                INSERT INTO app.conv VALUES ($1, 1, now() - $2 * interval '1 day', 10), ($1, 2, now(), 20);
                INSERT INTO app.msg VALUES ($1, 1, 7, now()), ($1, 2, 8, now());
                INSERT INTO app.members VALUES ($1, 1, 100), ($1, 1, 101), ($1, 2, 100);
                INSERT INTO app.flat VALUES ($1, 1, (now() - $2 * interval '1 day') AT TIME ZONE 'UTC'),
                                            ($1, 2, now() AT TIME ZONE 'UTC');
                """.replacingOccurrences(of: "$1", with: String(account)).replacingOccurrences(
                    of: "$2", with: String(days)))
        }
    }

    /// Every row as "table account id…", sorted: what is left.
    static func rows(_ connection: Connection) throws -> [String] {
        try connection.query(
            """
            SELECT 'blobs ' || account_id || ' ' || id FROM app.blobs
            UNION ALL SELECT 'conv ' || account_id || ' ' || id FROM app.conv
            UNION ALL SELECT 'msg ' || account_id || ' ' || id FROM app.msg
            UNION ALL SELECT 'members ' || account_id || ' ' || conv_id || ' ' || user_id FROM app.members
            UNION ALL SELECT 'flat ' || account_id || ' ' || id FROM app.flat
            ORDER BY 1
            """
        ).map { try $0.decode(String.self, at: 0) }
    }

    static func prepare(_ connection: Connection, registry: Registry) throws -> CompiledRegistry {
        try connection.executeScript(schema)
        let compiled = try Fixture.compile(connection, registry: registry)
        try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2')")
        return compiled
    }

    static func drainAll(_ registry: CompiledRegistry, account: String, on connection: Connection) throws {
        for name in ["conversations", "flat"] {
            _ = try Fixture.drain(registry.entityTypes[name]!, registry: registry, account: account, on: connection)
        }
    }

    @Test(arguments: [["id"], ["account_id", "id"]])
    func idsThatRestartPerTenantNeverCrossTenants(key: [String]) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Self.prepare(connection, registry: Self.registry(key: key))
            // Only account 1's conversation 1 is expired; account 2 has the very same ids, all recent.
            try Self.seed(connection, expiredFor: [1])
            let before = try Self.rows(connection)
            try Self.drainAll(registry, account: "1", on: connection)
            let gone = Set(before).subtracting(try Self.rows(connection))
            #expect(
                gone == ["conv 1 1", "msg 1 7", "members 1 1 100", "members 1 1 101", "blobs 1 10", "flat 1 1"])
            // Account 2 runs too: nothing of its is expired, nothing goes.
            try Self.drainAll(registry, account: "2", on: connection)
            #expect(Set(before).subtracting(try Self.rows(connection)) == gone)
        }
    }

    @Test func theRegistryCheckNamesKeysThatAreNotUniqueAndParentsThatDoNotMatch() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(Self.schema)
            try connection.execute("CREATE TABLE app.loose (account_id bigint, id bigint, closed_at timestamptz)")
            func refusal(_ registry: Registry) -> String {
                do {
                    _ = try RegistryCatalog.compile(registry, on: connection)
                    return "accepted"
                } catch { return "\(error)" }
            }
            // A parent of one column cannot name a conversation whose key is (account_id, id).
            #expect(
                refusal(Self.registry(key: ["id"], parent: ["conv_id"])).hasPrefix(
                    "key entity_types.conversations.children[0].parent: lists 1 column (conv_id), but the key of app.conv has 2: (account_id bigint, id bigint)"
                ))
            // A key of a column of another type.
            #expect(
                refusal(Self.registry(key: ["id"], parent: ["account_id", "sent_at"])).contains(
                    "column app.msg.sent_at is timestamp(3) without time zone, but the key column it holds, app.conv.id, is bigint"
                ))
            var loose = Self.registry(key: ["id"])
            loose.entityTypes[1].table = TableName(schema: "app", name: "loose")
            loose.entityTypes[1].clock = "closed_at"
            #expect(
                refusal(loose).hasPrefix(
                    "key entity_types.flat.key: key (id) of app.loose is not provably unique: expected a primary key or unique index (valid, not partial) on exactly (id) or (account_id, id); it has no primary key or unique index"
                ))
            // A child with children needs a key.
            var nested = Self.registry(key: ["id"])
            nested.entityTypes[0].children[1].children = [
                ChildTable(
                    table: TableName(schema: "app", name: "msg"), key: ["id"], parent: ["account_id", "conv_id"])
            ]
            #expect(refusal(nested).contains("entity_types.conversations.children[1].key: app.members has children"))
            // A child whose key is unique only per account, without its account column configured.
            var noAccount = Self.registry(key: ["id"])
            noAccount.entityTypes[0].children[0].account = nil
            #expect(refusal(noAccount).contains("entity_types.conversations.children[0].key: key (id) of app.msg"))
        }
    }

    @Test func aPredicateThatEscapesItsParenthesesOnlyNarrows() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            // Past the text check (built directly, not from configuration), "false) OR (true"
            // would have made `… AND (false) OR (true)`: every row of every account.
            let registry = try Self.prepare(
                connection, registry: Self.registry(key: ["id"], predicate: "false) OR (true"))
            try Self.seed(connection, expiredFor: [1])
            let before = try Self.rows(connection)
            _ = try Fixture.drain(
                registry.entityTypes["conversations"]!, registry: registry, account: "1", on: connection)
            let gone = Set(before).subtracting(try Self.rows(connection))
            #expect(gone == ["conv 1 1", "msg 1 7", "members 1 1 100", "members 1 1 101", "blobs 1 10"])
        }
    }

    @Test func aPredicateWithSideEffectsIsRefusedAtSync() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(Self.schema)
            try connection.execute("CREATE SEQUENCE app.s")
            do {
                _ = try Fixture.compile(
                    connection, registry: Self.registry(key: ["id"], predicate: "nextval('app.s') > 0"))
                Issue.record("a volatile predicate was accepted")
            } catch {
                #expect("\(error)".contains("key entity_types.conversations.where: the predicate"))
                #expect("\(error)".contains("calls nextval, which may have side effects"))
            }
            #expect(try connection.scalar("SELECT count(*) FROM lethe.entity_types", as: Int.self) == 0)
        }
    }

    @Test func theCombiningAccentTrickIsRefusedAsBytes() {
        let predicate = "id::text = '\u{0301}x' ) OR true OR ( id::text = '\u{0301}y'"
        #expect(throws: Predicate.Refused.self) { try Predicate.check(predicate) }
    }

    @Test func anAccountIdThatIsNotCanonicalMatchesNoRow() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Self.prepare(connection, registry: Self.registry(key: ["id"]))
            try Self.seed(connection, expiredFor: [1, 2])
            let type = registry.entityTypes["conversations"]!
            for alias in ["01", " 1", "+1", "1 "] {
                #expect(try connection.query(type.selectRoots, [alias, "infinity", 100]).count == 0, "\(alias)")
            }
            #expect(try connection.query(type.selectRoots, ["1", "infinity", 100]).count == 2)
        }
    }

    @Test func aRetiredTypeKeepsItsBlobsReferencedUntilForgotten() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            var full = Self.registry(key: ["id"])
            // `flat` also references the store, so the store stays declared when conversations go.
            full.entityTypes[1].blobs = [BlobReference(column: "id", store: "blobs")]
            _ = try Self.prepare(connection, registry: full)
            try Self.seed(connection, expiredFor: [])
            var retired = full
            retired.entityTypes.removeFirst()
            let compiled = try Fixture.compile(connection, registry: retired)
            let orphans = OrphanCollector(store: compiled.blobStores["blobs"]!)
            // Conversation rows still hold blob 20 (blob 10 is also flat 1's... id 10 does not exist in flat).
            _ = try orphans.mark(account: "1", on: connection)
            let marked = try connection.query(
                "SELECT blob_key FROM lethe.orphan_blobs WHERE account_id = '1' ORDER BY 1"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(marked == [], "a retired type's references no longer protected its blobs: \(marked)")
            try connection.execute("SELECT lethe.forget_entity_type('conversations')")
            let forgotten = try Fixture.compile(connection, registry: retired)
            _ = try OrphanCollector(store: forgotten.blobStores["blobs"]!).mark(account: "1", on: connection)
            let after = try connection.query(
                "SELECT blob_key FROM lethe.orphan_blobs WHERE account_id = '1' ORDER BY 1"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(after == ["10", "20"])
        }
    }

    /// A crafted archive of account 1 must not write account 2's rows: every record is
    /// checked against the archive's account (roots by their account column, children
    /// through their parents, blobs by theirs) before anything is inserted.
    @Test func aRestoreRefusesRecordsOfAnotherAccount() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Self.prepare(connection, registry: Self.registry(key: ["account_id", "id"]))
            try Self.seed(connection, expiredFor: [])
            let before = try Self.rows(connection)
            let cases: [(ArchiveEntryName, [String])] = [
                (.rows(type: "conversations", index: 0, table: "app.conv"), [#"{"account_id":2,"id":99,"rec":10}"#]),
                // A child under account 2's existing conversation 1, in account 1's archive.
                (
                    .rows(type: "conversations", index: 2, table: "app.members"),
                    [#"{"account_id":2,"conv_id":1,"user_id":5}"#]
                ),
                (.blobRows(store: "blobs"), [#"{"account_id":2,"id":77}"#]),
            ]
            for (entry, records) in cases {
                try connection.execute("BEGIN")
                let restore = try ArchiveRestore(registry: registry, account: "1", on: connection)
                #expect(throws: ArchiveRestoreError.self, "\(entry)") { try restore.insert(records, into: entry) }
                try connection.execute("ROLLBACK")
            }
            // Account 1's own records go in.
            try connection.execute("BEGIN")
            let restore = try ArchiveRestore(registry: registry, account: "1", on: connection)
            try restore.insert(
                [#"{"account_id":1,"id":99,"rec":10}"#], into: .rows(type: "conversations", index: 0, table: "app.conv")
            )
            try restore.insert(
                [#"{"account_id":1,"conv_id":99,"user_id":5}"#],
                into: .rows(type: "conversations", index: 2, table: "app.members"))
            try connection.execute("COMMIT")
            #expect(Set(try Self.rows(connection)).subtracting(before) == ["conv 1 99", "members 1 99 5"])
        }
    }
}
