import Foundation
import Postgres
import Retention
import TestSupport
import Testing

@testable import Store

/// What an adversarial review of the key and scope rules found (issue 14), each reproduced
/// against a real PostgreSQL: inheritance, collations, coarse account types, float keys,
/// removed blob columns, side effects through operators and views, parent column order,
/// NULL version items, domains, date clocks.
@Suite struct SchemaAttackTests {
    static func table(_ name: String) -> TableName { TableName(schema: "app", name: name) }

    static func type(
        _ name: String = "things", table: String = "t", key: [String] = ["id"], clock: String = "closed_at",
        predicate: String? = nil, children: [ChildTable] = [], blobs: [BlobReference] = [], versions: Versions? = nil
    ) -> EntityType {
        EntityType(
            name: name, table: Self.table(table), key: key, account: "account_id", clock: clock, predicate: predicate,
            bounds: Fixture.bounds("30d", "1d", "5y"), batchSize: 100, blobs: blobs, children: children,
            versions: versions)
    }

    static func refusal(_ registry: Registry, _ connection: Connection) -> String {
        do {
            _ = try Fixture.compile(connection, registry: registry)
            return "accepted"
        } catch { return "\(error)" }
    }

    static func run(
        _ schema: String, _ body: (Connection) throws -> Void
    ) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript("CREATE SCHEMA app;\n" + schema)
            try body(connection)
        }
    }

    @Test func anInheritanceParentProvesNoKey() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id bigint NOT NULL, id bigint PRIMARY KEY, closed_at timestamptz);
            CREATE TABLE app.t_archive () INHERITS (app.t);
            """
        ) { connection in
            #expect(
                Self.refusal(Registry(entityTypes: [Self.type()]), connection).contains(
                    "key entity_types.things.table: table app.t has inheritance children (app.t_archive)"))
        }
    }

    @Test func aUniqueIndexUnderAnotherCollationProvesNothing() async throws {
        try await Self.run(
            """
            CREATE COLLATION app.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            CREATE TABLE app.t (account_id bigint NOT NULL, id text COLLATE app.ci NOT NULL, closed_at timestamptz);
            CREATE UNIQUE INDEX ON app.t (id COLLATE "C");
            """
        ) { connection in
            #expect(
                Self.refusal(Registry(entityTypes: [Self.type()]), connection).contains(
                    "key entity_types.things.key: key (id) of app.t is not provably unique"))
            // The same index under the column's own collation proves it.
            try connection.execute("CREATE UNIQUE INDEX ON app.t (id)")
            #expect(Self.refusal(Registry(entityTypes: [Self.type()]), connection) == "accepted")
        }
    }

    @Test func accountsEqualAsNumbersButNotAsTextStayApart() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id numeric NOT NULL, id bigint PRIMARY KEY, closed_at timestamptz);
            INSERT INTO app.t VALUES (1, 7, now() - interval '3 years'), (1.0, 8, now() - interval '3 years');
            """
        ) { connection in
            let registry = try Fixture.compile(connection, registry: Registry(entityTypes: [Self.type()]))
            try connection.execute("INSERT INTO lethe.accounts (account_id) VALUES ('1'), ('1.0')")
            try connection.execute("SELECT lethe.set_policy(a, 'things', '30 days') FROM unnest(ARRAY['1', '1.0']) a")
            try connection.execute("SELECT lethe.place_hold('1', NULL, 'held', NULL)")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "1.0", on: connection)
            // Account 1.0 took its own row only; held account 1's row stays.
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "7")
        }
    }

    @Test func accountsEqualUnderACaseInsensitiveCollationStayApart() async throws {
        try await Self.run(
            """
            CREATE COLLATION app.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            CREATE TABLE app.t (account_id text COLLATE app.ci NOT NULL, id bigint PRIMARY KEY, item bigint,
                                closed_at timestamptz);
            INSERT INTO app.t VALUES ('abc', 1, 1, now() - interval '3 years'), ('ABC', 2, 1, now() - interval '3 years'),
                                     ('ABC', 3, 1, now() - interval '2 days');
            """
        ) { connection in
            let registry = try Fixture.compile(
                connection, registry: Registry(entityTypes: [Self.type(versions: Versions(item: "item", keep: 1))]))
            try connection.execute("SELECT lethe.add_account('abc')")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "abc", on: connection)
            // abc's only row is its newest version of item 1: it stays, and ABC's rows are not abc's.
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "1,2,3")
            try connection.execute("UPDATE app.t SET item = 2 WHERE id = 1")
            try connection.execute("INSERT INTO app.t VALUES ('abc', 4, 2, now())")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "abc", on: connection)
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "2,3,4")
        }
    }

    @Test func aKeyWhoseUniqueIndexIsDroppedAfterTheCheckDeletesNothing() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id bigint NOT NULL, id bigint, closed_at timestamptz,
                                CONSTRAINT t_pk PRIMARY KEY (id));
            INSERT INTO app.t VALUES (1, 1, now() - interval '3 years');
            """
        ) { connection in
            let registry = try Fixture.compile(connection, registry: Registry(entityTypes: [Self.type()]))
            try connection.execute("SELECT lethe.add_account('1')")
            // The application changes its primary key while workers run: ids may now repeat.
            try connection.execute("ALTER TABLE app.t DROP CONSTRAINT t_pk")
            try connection.execute("INSERT INTO app.t VALUES (2, 1, now())")
            #expect(throws: KeyProofGone.self) {
                try RetentionBatch(type: registry.entityTypes["things"]!, registry: registry).run(
                    account: "1", task: nil, worker: nil, on: connection)
            }
            #expect(try connection.scalar("SELECT count(*) FROM app.t", as: Int.self) == 2)
        }
    }

    @Test func aFloatKeyIsRefused() async throws {
        try await Self.run(
            "CREATE TABLE app.t (account_id bigint NOT NULL, id float8 PRIMARY KEY, closed_at timestamptz);"
        ) { connection in
            #expect(
                Self.refusal(Registry(entityTypes: [Self.type()]), connection).contains(
                    "key column app.t.id is double precision: a floating-point key cannot be matched exactly"))
        }
    }

    @Test func aParentListedInAnotherOrderThanTheKeyIsRefused() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (id bigint, account_id bigint, closed_at timestamptz, PRIMARY KEY (id, account_id));
            CREATE TABLE app.notes (account_id bigint, t_id bigint, note text);
            CREATE TABLE app.linked (a bigint, b bigint, FOREIGN KEY (b, a) REFERENCES app.t (id, account_id));
            """
        ) { connection in
            let notes = ChildTable(table: Self.table("notes"), key: nil, parent: ["account_id", "t_id"])
            #expect(
                Self.refusal(
                    Registry(entityTypes: [Self.type(key: ["id", "account_id"], children: [notes])]), connection
                )
                .contains("expected parent: [t_id, account_id]"))
            let linked = ChildTable(table: Self.table("linked"), key: nil, parent: ["a", "b"])
            #expect(
                Self.refusal(
                    Registry(entityTypes: [Self.type(key: ["id", "account_id"], children: [linked])]), connection
                )
                .contains(
                    "the foreign key of app.linked pairs them with the key of app.t (id, account_id) in another order: expected parent: [b, a]"
                ))
        }
    }

    @Test func predicatesWithSideEffectsThroughOperatorsAndViewsAreRefused() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id bigint NOT NULL, id bigint PRIMARY KEY, closed_at timestamptz);
            CREATE TABLE app.victim (x int);
            CREATE FUNCTION app.boom(a bigint, b bigint) RETURNS boolean LANGUAGE sql VOLATILE
                AS 'DELETE FROM app.victim; SELECT true';
            CREATE FUNCTION app.boom0() RETURNS boolean LANGUAGE sql VOLATILE AS 'DELETE FROM app.victim; SELECT true';
            CREATE OPERATOR app.=== (FUNCTION = app.boom, LEFTARG = bigint, RIGHTARG = bigint);
            CREATE VIEW app.ok AS SELECT app.boom0() AS fine;
            CREATE FUNCTION app.wrapper() RETURNS boolean LANGUAGE sql STABLE RETURN (SELECT random() < 2);
            """
        ) { connection in
            for predicate in [
                "id OPERATOR(app.===) id", "EXISTS (SELECT 1 FROM app.ok WHERE fine)", "app.wrapper()",
                "random() < 2", "pg_catalog.clock_timestamp() > now()",
            ] {
                let refused = Self.refusal(Registry(entityTypes: [Self.type(predicate: predicate)]), connection)
                #expect(refused.contains("which may have side effects"), "\(predicate): \(refused)")
            }
            #expect(
                Self.refusal(Registry(entityTypes: [Self.type(predicate: "id > 0 AND now() > closed_at")]), connection)
                    == "accepted")
        }
    }

    @Test func removedBlobColumnsKeepProtectingUntilForgottenAndAReturningTypeIsRemembered() async throws {
        try await Self.run(
            """
            CREATE TABLE app.files (id bigint PRIMARY KEY, account_id bigint NOT NULL);
            CREATE TABLE app.docs (id bigint PRIMARY KEY, account_id bigint, closed_at timestamptz, file_id bigint);
            CREATE TABLE app.msgs (id bigint PRIMARY KEY, account_id bigint, closed_at timestamptz, attachment_id bigint);
            INSERT INTO app.files VALUES (100, 1), (200, 1);
            INSERT INTO app.docs VALUES (1, 1, now(), 100);
            INSERT INTO app.msgs VALUES (1, 1, now(), 200);
            """
        ) { connection in
            let store = BlobStore(name: "files", table: Self.table("files"), key: "id", account: "account_id")
            let docs = Self.type("docs", table: "docs", blobs: [BlobReference(column: "file_id", store: "files")])
            let msgs = Self.type("msgs", table: "msgs", blobs: [BlobReference(column: "attachment_id", store: "files")])
            _ = try Fixture.compile(connection, registry: Registry(entityTypes: [docs, msgs], blobStores: [store]))
            try connection.execute("SELECT lethe.add_account('1')")
            func orphans(_ registry: Registry) throws -> [String] {
                let compiled = try Fixture.compile(connection, registry: registry)
                try connection.execute("DELETE FROM lethe.orphan_blobs")
                _ = try OrphanCollector(store: compiled.blobStores["files"]!).mark(account: "1", on: connection)
                return try connection.query("SELECT blob_key FROM lethe.orphan_blobs ORDER BY 1").map {
                    try $0.decode(String.self, at: 0)
                }
            }
            var withoutColumn = docs
            withoutColumn.blobs = []
            // The docs blob column is gone from the configuration: blob 100 is still referenced.
            #expect(try orphans(Registry(entityTypes: [withoutColumn, msgs], blobStores: [store])) == [])
            try connection.execute("SELECT lethe.forget_entity_type('docs')")
            #expect(try orphans(Registry(entityTypes: [withoutColumn, msgs], blobStores: [store])) == ["100"])
            // The whole type goes, is forgotten, comes back and goes again: it protects again.
            #expect(try orphans(Registry(entityTypes: [docs, msgs], blobStores: [store])) == [])
            #expect(try orphans(Registry(entityTypes: [msgs], blobStores: [store])) == [])
            try connection.execute("SELECT lethe.forget_entity_type('docs')")
            #expect(try orphans(Registry(entityTypes: [msgs], blobStores: [store])) == ["100"])
            #expect(try orphans(Registry(entityTypes: [docs, msgs], blobStores: [store])) == [])
            #expect(
                try orphans(Registry(entityTypes: [msgs], blobStores: [store])) == [], "forgotten_at survived a return")
        }
    }

    @Test func versionsWithoutAnItemAreNeverDeleted() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id bigint NOT NULL, id bigint PRIMARY KEY, doc_id bigint, closed_at timestamptz);
            INSERT INTO app.t VALUES (1, 1, 10, now() - interval '3 years'), (1, 2, 10, now() - interval '2 years'),
                                     (1, 3, NULL, now() - interval '3 years'), (1, 4, NULL, now() - interval '2 years');
            """
        ) { connection in
            let registry = try Fixture.compile(
                connection, registry: Registry(entityTypes: [Self.type(versions: Versions(item: "doc_id", keep: 1))]))
            try connection.execute("SELECT lethe.add_account('1')")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "1", on: connection)
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "2,3,4")
        }
    }

    @Test func aDomainInAnySchemaWorksAsTheAccountColumn() async throws {
        try await Self.run(
            """
            CREATE DOMAIN public.tenant_id AS bigint;
            CREATE TABLE app.t (account_id public.tenant_id NOT NULL, id bigint PRIMARY KEY, closed_at timestamptz);
            INSERT INTO app.t VALUES (1, 1, now() - interval '3 years'), (2, 2, now() - interval '3 years');
            """
        ) { connection in
            let registry = try Fixture.compile(connection, registry: Registry(entityTypes: [Self.type()]))
            try connection.execute("SELECT lethe.add_account('1')")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "1", on: connection)
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "2")
        }
    }

    @Test func aDateClockExpiresOnlyOnceItsWholeDayIsPast() async throws {
        try await Self.run(
            """
            CREATE TABLE app.t (account_id bigint NOT NULL, id bigint PRIMARY KEY, day date);
            INSERT INTO app.t VALUES (1, 1, (now() AT TIME ZONE 'UTC')::date - 1), (1, 2, (now() AT TIME ZONE 'UTC')::date - 2);
            """
        ) { connection in
            let registry = try Fixture.compile(connection, registry: Registry(entityTypes: [Self.type(clock: "day")]))
            try connection.execute("SELECT lethe.add_account('1')")
            try connection.execute("SELECT lethe.set_policy('1', 'things', '1 day')")
            _ = try Fixture.drain(registry.entityTypes["things"]!, registry: registry, account: "1", on: connection)
            // Yesterday ends less than a day ago: it stays. The day before yesterday goes.
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t") == "1")
        }
    }
}
