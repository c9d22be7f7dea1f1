import Crypto
import Retention
import Yams

/// The `entity_types:` and `blob_stores:` sections of a configuration as the text the
/// database keeps (`lethe.registry_source`): serialised from the parsed YAML nodes (so
/// comments and layout do not count as changes), and read back with the same
/// `RegistryParser` a configuration file goes through.
enum RegistryText {
    /// The sections as YAML; a configuration without them gives an empty mapping.
    static func serialize(entityTypes: Node?, blobStores: Node?) -> String {
        var pairs: [(Node, Node)] = []
        if let entityTypes { pairs.append((Node("entity_types"), entityTypes)) }
        if let blobStores { pairs.append((Node("blob_stores"), blobStores)) }
        // Serialising nodes that were just composed cannot fail; an empty text reads back empty.
        return (try? Yams.serialize(node: Node.mapping(Node.Mapping(pairs)))) ?? ""
    }

    /// Lower-case hex SHA-256 of the text.
    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The registry the text declares; errors name `source` and the key path.
    static func parse(_ text: String, source: String) throws(UsageError) -> Registry {
        let root = try YAMLErrorText.compose(text, what: source)
        return try RegistryParser().parse(
            entityTypes: root?.mapping?["entity_types"], blobStores: root?.mapping?["blob_stores"], source: source)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
