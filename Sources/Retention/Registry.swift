/// The entity types and blob stores an operator declared in configuration: which tables
/// hold which data, what depends on each row, and the bounds a tenant may choose within.
/// Pure data; `Registry.check()` validates what can be checked without a database.
public struct Registry: Sendable, Equatable {
    public var entityTypes: [EntityType]
    public var blobStores: [BlobStore]

    public init(entityTypes: [EntityType] = [], blobStores: [BlobStore] = []) {
        self.entityTypes = entityTypes
        self.blobStores = blobStores
    }

    public var isEmpty: Bool { entityTypes.isEmpty && blobStores.isEmpty }

    public func entityType(named name: String) -> EntityType? { entityTypes.first { $0.name == name } }
    public func blobStore(named name: String) -> BlobStore? { blobStores.first { $0.name == name } }

    /// Every column, anywhere in the registry, that holds a key of `store`: a blob is
    /// referenced while any of them holds its key. `account` is the referencing table's
    /// account column, where it has one.
    public func references(to store: String) -> [(table: TableName, column: String, account: String?)] {
        var out: [(TableName, String, String?)] = []
        func walk(_ table: TableName, _ account: String?, _ blobs: [BlobReference], _ children: [ChildTable]) {
            for blob in blobs where blob.store == store { out.append((table, blob.column, account)) }
            for child in children { walk(child.table, child.account, child.blobs, child.children) }
        }
        for type in entityTypes { walk(type.table, type.account, type.blobs, type.children) }
        return out
    }
}

/// A schema-qualified (or search-path) table name, as written in configuration.
public struct TableName: Sendable, Hashable, CustomStringConvertible {
    public var schema: String?
    public var name: String

    public init(schema: String?, name: String) {
        self.schema = schema
        self.name = name
    }

    /// Parses `app.conversations` or `conversations`; nil when it is not one or two plain
    /// identifiers (see `Identifier.isPlain`).
    public static func parse(_ text: String) -> TableName? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1 where Identifier.isPlain(parts[0]): return TableName(schema: nil, name: parts[0])
        case 2 where Identifier.isPlain(parts[0]) && Identifier.isPlain(parts[1]):
            return TableName(schema: parts[0], name: parts[1])
        default: return nil
        }
    }

    public var description: String { schema.map { "\($0).\(name)" } ?? name }
}

/// Rules for names that come from configuration and end up in SQL as quoted identifiers.
public enum Identifier {
    /// What `isPlain` accepts, for error messages.
    public static let accepted =
        "a letter or _ followed by letters, digits, _ or $, at most 63 bytes (matched exactly, case-sensitive)"

    /// A letter or underscore, then letters, digits, underscores or dollars; at most 63 bytes
    /// (PostgreSQL's limit). Anything else — quotes, dots, spaces, semicolons — is refused
    /// before it could reach SQL, even though names are always quoted there.
    public static func isPlain(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        guard first == "_" || first.properties.isAlphabetic else { return false }
        return name.unicodeScalars.allSatisfy {
            $0 == "_" || $0 == "$" || $0.properties.isAlphabetic || ("0"..."9").contains($0)
        }
    }

    /// Names of entity types, blob stores and tiers: lower-case letters, digits and `_`.
    public static let nameAccepted = "lower-case letters, digits and _, starting with a letter, at most 63 characters"

    public static func isName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLowercase, name.count <= 63 else { return false }
        return name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }
    }
}
