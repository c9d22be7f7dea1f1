import Foundation
import Yams

/// The YAML configuration file (`--config` or `LETHE_CONFIG`). Every key is optional;
/// an unknown key is an error, so a typo never silently falls back to a default.
///
/// ```yaml
/// database:
///   url: postgresql://lethe@db.internal:5432/app
/// log:
///   level: info
/// migrations:
///   directory: /usr/share/lethe/migrations
/// ```
struct Configuration: Equatable {
    var databaseURL: String?
    var logLevel: String?
    var migrationsDirectory: String?

    /// The keys accepted, as dotted paths, for error messages and docs.
    static let knownKeys: [String: [String]] = [
        "": ["database", "log", "migrations"],
        "database": ["url"],
        "log": ["level"],
        "migrations": ["directory"],
    ]

    /// Reads and validates `path`; errors name the file, the key and the value.
    static func load(path: String) throws(UsageError) -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read the configuration file \(path): no such readable file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw UsageError("configuration file \(path) is not UTF-8 text")
        }
        return try parse(text, source: path)
    }

    static func parse(_ text: String, source: String) throws(UsageError) -> Configuration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw UsageError("configuration file \(source) is not valid YAML: \(error)")
        }
        var config = Configuration()
        guard let root else { return config }  // an empty file is a valid, empty configuration
        let top = try mapping(root, key: "", source: source)
        for (key, value) in top {
            let section = try mapping(value, key: key, source: source)
            for (field, leaf) in section {
                let scalar = try string(leaf, key: "\(key).\(field)", source: source)
                switch (key, field) {
                case ("database", "url"): config.databaseURL = scalar
                case ("log", "level"): config.logLevel = scalar
                case ("migrations", "directory"): config.migrationsDirectory = scalar
                default: preconditionFailure("key checked by mapping()")
                }
            }
        }
        return config
    }

    /// The entries of a mapping node, after checking every key is known at `key`.
    private static func mapping(_ node: Node, key: String, source: String) throws(UsageError) -> [(String, Node)] {
        let place = key.isEmpty ? "the top level" : "key \(key)"
        guard let mapping = node.mapping else {
            throw UsageError("configuration file \(source): \(place) must be a mapping of keys to values")
        }
        let allowed = knownKeys[key] ?? []
        var entries: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else {
                throw UsageError("configuration file \(source): a key at \(place) is not a string")
            }
            guard allowed.contains(name) else {
                let full = key.isEmpty ? name : "\(key).\(name)"
                throw UsageError(
                    "configuration file \(source): unknown key \(full); accepted at \(place): "
                        + allowed.joined(separator: ", "))
            }
            entries.append((name, value))
        }
        return entries
    }

    private static func string(_ node: Node, key: String, source: String) throws(UsageError) -> String {
        guard let scalar = node.scalar else {
            throw UsageError("configuration file \(source): key \(key) must be a single value")
        }
        return scalar.string
    }
}
