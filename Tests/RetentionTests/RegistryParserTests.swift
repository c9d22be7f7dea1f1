import Retention
import Testing

/// The registry sections as a plain tree, without YAML or a database.
@Suite struct RegistryParserTests {
    static let stores: ConfigurationNode = ["blobs": ["table": "app.blobs", "account": "account_id"]]

    static func conversations(_ changes: [String: ConfigurationNode?] = [:]) -> ConfigurationNode {
        var fields: [(String, ConfigurationNode)] = [
            ("table", "app.conv"), ("account", "account_id"), ("clock", "ended_at"), ("where", "status = 'closed'"),
            ("interval", ["default": "30d", "min": "1d", "max": "1y"]), ("batch_size", "5"),
            ("blobs", [["column": "rec"]]),
            (
                "children",
                [
                    [
                        "table": "app.msg", "parent": "conv_id",
                        "children": [["table": "app.att", "parent": "msg_id", "blobs": [["column": "blob_id"]]]],
                    ]
                ]
            ),
        ]
        for (key, value) in changes {
            fields.removeAll { $0.0 == key }
            if let value { fields.append((key, value)) }
        }
        return .mapping([.init(key: "conversations", value: .mapping(fields.map { .init(key: $0.0, value: $0.1) }))])
    }

    func refusal(_ types: ConfigurationNode, stores: ConfigurationNode? = Self.stores) -> String {
        do {
            _ = try RegistryParser().parse(entityTypes: types, blobStores: stores)
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test func readsTheTree() throws {
        let registry = try RegistryParser().parse(entityTypes: Self.conversations(), blobStores: Self.stores)
        let type = try #require(registry.entityType(named: "conversations"))
        #expect(type.table.description == "app.conv" && type.key == ["id"] && type.batchSize == 5)
        #expect(type.predicate == "status = 'closed'" && type.deletes && type.lanes == 1)
        #expect(type.bounds.maximum.description == "1y")
        #expect(type.allChildren.map(\.table.name) == ["msg", "att"])
        #expect(registry.references(to: "blobs").map(\.column) == ["rec", "blob_id"])
        #expect(registry.blobStore(named: "blobs")?.key == "id")
    }

    @Test func absentSectionsAreAnEmptyRegistry() throws {
        #expect(try RegistryParser().parse(entityTypes: nil, blobStores: nil).isEmpty)
    }

    @Test func optionsAreRead() throws {
        let registry = try RegistryParser().parse(
            entityTypes: Self.conversations([
                "key": ["account_id", "id"], "lanes": "4", "check_interval": "5m", "delete": "off",
                "versions": ["item": "item_id", "keep": "3"],
            ]),
            blobStores: Self.stores)
        let type = try #require(registry.entityType(named: "conversations"))
        #expect(type.key == ["account_id", "id"] && type.lanes == 4 && !type.deletes)
        #expect(type.checkInterval == .seconds(300))
        #expect(type.versions == Versions(item: "item_id", keep: 3))
    }

    @Test(
        arguments: [
            (["key": []], "key entity_types.conversations.key: is an empty list; expected at least one column"),
            (["key": ["id", "id"]], "key entity_types.conversations.key: lists a column twice: id, id"),
            (
                ["key": ["a": "b"]],
                "key entity_types.conversations.key: must be a column name or a list of column names"
            ),
            (["lanes": "65"], "key entity_types.conversations.lanes: has the value 65; expected 1 to 64"),
            (
                ["delete": "maybe"],
                "key entity_types.conversations.delete: has the value \"maybe\"; expected true or false"
            ),
            (
                ["batch_size": "0"],
                "key entity_types.conversations.batch_size: has the value \"0\"; expected a whole number from 1 to 2147483647"
            ),
            (["interval": nil], "key entity_types.conversations.interval: is required: { default: …, min: …, max: … }"),
            (["clock": ["a"]], "key entity_types.conversations.clock: must be a single value"),
            (["children": "x"], "key entity_types.conversations.children: must be a list"),
            (["children": [["table": "app.msg"]]], "key entity_types.conversations.children[0].parent: is required"),
            (
                ["batchsize": "5"],
                "key entity_types.conversations.batchsize: unknown key; accepted: account, batch_size"
            ),
        ] as [([String: ConfigurationNode?], String)])
    func refusalsNameTheKeyPath(_ change: [String: ConfigurationNode?], _ expected: String) {
        #expect(refusal(Self.conversations(change)).hasPrefix(expected), "\(change)")
    }

    @Test func blobStoresAreResolvedByName() {
        let named = Self.conversations(["blobs": [["column": "rec", "store": "files"]]])
        #expect(
            refusal(named)
                == "key entity_types.conversations.blobs[0].store: no blob store named \"files\"; "
                + "declared under blob_stores: blobs")
        #expect(
            refusal(Self.conversations(), stores: nil)
                == "key entity_types.conversations.blobs[0].store: is required, and no blob store is declared under "
                + "blob_stores")
        let two: ConfigurationNode = [
            "a": ["table": "app.a", "account": "account_id"], "b": ["table": "app.b", "account": "account_id"],
        ]
        #expect(
            refusal(Self.conversations(), stores: two)
                == "key entity_types.conversations.blobs[0].store: is required when several blob stores are declared "
                + "(a, b)")
    }

    @Test func namesAndShapesOfSections() {
        #expect(refusal("x") == "key entity_types: must be a mapping of names to definitions")
        #expect(
            refusal(.mapping([.init(key: "Conversations", value: [:])])).hasPrefix(
                "key entity_types: the name \"Conversations\" is not allowed"))
        #expect(refusal(.mapping([.init(key: nil, value: [:])])).hasPrefix("key entity_types: the name \"?\""))
        #expect(refusal(["conversations": "x"]) == "key entity_types.conversations: must be a mapping")
    }

    @Test func injectionAttemptsAreRefused() {
        #expect(
            refusal(Self.conversations(["table": "app.conv; DROP TABLE app.msg"])).hasPrefix(
                "key entity_types.conversations.table: the table name \"app.conv; DROP TABLE app.msg\" is not allowed"))
        #expect(
            refusal(Self.conversations(["account": "a\"b"])).hasPrefix(
                "key entity_types.conversations.account: the column name \"a\"b\" is not allowed"))
        #expect(
            refusal(Self.conversations(["where": "true; DELETE FROM app.conv"])).hasPrefix(
                "key entity_types.conversations.where: the predicate \"true; DELETE FROM app.conv\" is refused"))
    }
}

@Suite struct BooleanTextTests {
    @Test func acceptedAndRefused() {
        for text in ["true", "Yes", "ON"] { #expect(BooleanText.parse(text) == true) }
        for text in ["false", "no", "Off"] { #expect(BooleanText.parse(text) == false) }
        for text in ["", "1", "maybe"] { #expect(BooleanText.parse(text) == nil) }
    }
}
