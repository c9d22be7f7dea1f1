/// A configuration document as a plain tree: what a YAML (or any other) reader hands the
/// domain, so that checking a section needs no parser library. Keys keep their file order;
/// a key that is not text (a list or mapping used as a key) is nil.
public indirect enum ConfigurationNode: Sendable, Equatable {
    case scalar(String)
    case sequence([ConfigurationNode])
    case mapping([Entry])

    /// One key and its value in a mapping.
    public struct Entry: Sendable, Equatable {
        public var key: String?
        public var value: ConfigurationNode

        public init(key: String?, value: ConfigurationNode) {
            self.key = key
            self.value = value
        }
    }

    /// The text of a scalar; nil for a list or a mapping.
    public var scalar: String? {
        if case .scalar(let text) = self { return text }
        return nil
    }

    /// The items of a list; nil for a scalar or a mapping.
    public var sequence: [ConfigurationNode]? {
        if case .sequence(let items) = self { return items }
        return nil
    }

    /// The entries of a mapping, in file order; nil for a scalar or a list.
    public var mapping: [Entry]? {
        if case .mapping(let entries) = self { return entries }
        return nil
    }
}

// Literals, so that tests and callers can write a tree as they would write the YAML.
extension ConfigurationNode: ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .scalar(value) }
    public init(arrayLiteral elements: ConfigurationNode...) { self = .sequence(elements) }
    public init(dictionaryLiteral elements: (String, ConfigurationNode)...) {
        self = .mapping(elements.map { Entry(key: $0.0, value: $0.1) })
    }
}
