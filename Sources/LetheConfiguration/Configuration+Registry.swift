import Retention
import Yams

extension RegistryParser {
    /// The registry that the `entity_types:` and `blob_stores:` nodes of a YAML document
    /// declare; a refusal names the file (`source`), the key path and the value.
    func parse(entityTypes: Node?, blobStores: Node?, source: String) throws(UsageError) -> Registry {
        do throws(Refusal) {
            return try parse(
                entityTypes: entityTypes.map(ConfigurationNode.init), blobStores: blobStores.map(ConfigurationNode.init)
            )
        } catch {
            throw UsageError("configuration file \(source): \(error)")
        }
    }
}

extension ConfigurationNode {
    /// The plain tree of a composed YAML node: scalars as written, keys that are not text as nil.
    init(_ node: Node) {
        switch node {
        case .scalar(let scalar): self = .scalar(scalar.string)
        case .sequence(let sequence): self = .sequence(sequence.map(ConfigurationNode.init))
        case .mapping(let mapping): self = .mapping(mapping.map { Entry(key: $0.key.string, value: .init($0.value)) })
        // Composing resolves every alias to the node it names; only a serialiser builds one.
        case .alias: preconditionFailure("a composed YAML document holds no alias nodes")
        }
    }
}
