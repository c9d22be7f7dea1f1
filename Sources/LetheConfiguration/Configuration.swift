import Foundation
import Retention
import Yams

/// The YAML configuration file (`--config` or `LETHE_CONFIG`). Every key is optional;
/// unknown keys and badly typed values are refused with the file, key and value named, so
/// a typo never silently falls back to a default. README.md documents every key.
package struct Configuration: Equatable {
    /// Scalar values by dotted key (`worker.lease`), as written.
    private(set) var values: [String: String] = [:]
    /// The entity types and blob stores (`entity_types:`, `blob_stores:`), checked for shape
    /// here and against the live database when a command needs them.
    package private(set) var registry = Registry()
    /// Those two sections as text (`RegistryText`): what a sync stores as the registry in force.
    private(set) var registryText = RegistryText.serialize(entityTypes: nil, blobStores: nil)

    /// No keys, no entity types and no blob stores.
    package init() {}

    /// What a key holds, for validation and error messages.
    enum Kind: Equatable {
        case text, duration, positiveInteger, boolean, byteSize
        /// A whole number within the range (`archive.compression_level`).
        case integer(ClosedRange<Int>)
        /// One of these words (`log.format`).
        case choice([String])
        /// `0` (off) or a duration within the range (`coordinator.backlog_interval`).
        case durationOrOff(ClosedRange<Duration>)
        var accepted: String {
            switch self {
            case .text: return "text"
            case .duration: return DurationText.accepted
            case .positiveInteger: return "a whole number of at least 1"
            case .boolean: return "true or false"
            case .byteSize: return ByteSizeText.accepted
            case .integer(let range): return "a whole number from \(range.lowerBound) to \(range.upperBound)"
            case .choice(let words): return "one of " + words.joined(separator: ", ")
            case .durationOrOff(let range):
                return "0 (off) or a duration from \(DurationText.format(range.lowerBound)) to "
                    + "\(DurationText.format(range.upperBound)), \(DurationText.accepted)"
            }
        }
    }

    /// Every key the file may hold.
    static let keys: [String: Kind] = [
        "database.url": .text,
        "log.level": .text,
        "log.format": .choice(["text", "json"]),
        "metrics.address": .text,
        "migrations.directory": .text,
        "worker.concurrency": .positiveInteger,
        "worker.claim_batch": .integer(1...100_000),
        "worker.claim_loops": .positiveInteger,
        "worker.lease": .duration,
        "worker.heartbeat_interval": .duration,
        "worker.rescue_interval": .duration,
        "worker.poll_interval": .duration,
        "worker.listen": .boolean,
        "worker.task_budget": .duration,
        "worker.shutdown_grace": .duration,
        "queue.max_attempts": .positiveInteger,
        "queue.retry_base": .duration,
        "queue.retry_max": .duration,
        "coordinator.tick_interval": .duration,
        "coordinator.rescue_interval": .duration,
        "coordinator.prune_interval": .duration,
        "coordinator.keep_finished": .duration,
        "coordinator.keep_dead": .duration,
        "coordinator.prune_batch": .positiveInteger,
        "coordinator.registry_check_interval": .duration,
        "coordinator.backlog_interval": .durationOrOff(backlogIntervalRange),
        "retention.check_interval": .duration,
        "retention.orphan_interval": .duration,
        "retention.notice_interval": .duration,
        "retention.max_batches": .positiveInteger,
        "retention.lock_timeout": .duration,
        "retention.statement_timeout": .duration,
        "retention.target_batch_duration": .durationOrOff(targetBatchDurationRange),
        "throttle.enabled": .boolean,
        "throttle.check_interval": .duration,
        "throttle.max_replication_lag": .durationOrOff(throttleDurationRange),
        "throttle.max_wal_rate": .byteSize,
        "throttle.max_transaction_age": .durationOrOff(throttleDurationRange),
        "throttle.max_lock_waits": .integer(0...1_000_000),
        "throttle.floor_rate": .integer(0...1_000_000),
        "throttle.replication_lag_query": .text,
        "archive.master_key_file": .text,
        "archive.spool_directory": .text,
        "archive.split_size": .byteSize,
        "archive.compression_level": .integer(1...9),
        "archive.max_roots_per_type": .positiveInteger,
        "archive.plan_chunk_roots": .positiveInteger,
        "archive.site_timeout": .duration,
        "archive.upload_attempts": .positiveInteger,
        "archive.keep_local": .boolean,
    ]

    /// Top-level sections with a structure of their own (see `Configuration+Registry`).
    static let sections = ["entity_types", "blob_stores"]

    package var databaseURL: String? { values["database.url"] }
    package var logLevel: String? { values["log.level"] }
    /// `text` or `json` (checked on load).
    package var logFormat: String? { values["log.format"] }
    /// `HOST:PORT` for `/metrics`, `/healthz` and `/readyz` (checked by the command).
    package var metricsAddress: String? { values["metrics.address"] }
    package var migrationsDirectory: String? { values["migrations.directory"] }

    func duration(_ key: String) -> Duration? { values[key].flatMap(DurationText.parse) }
    func integer(_ key: String) -> Int? { values[key].flatMap { Int($0) } }
    func boolean(_ key: String) -> Bool? { values[key].flatMap(BooleanText.parse) }
    func byteSize(_ key: String) -> Int64? { values[key].flatMap(ByteSizeText.parse) }

    /// Reads and validates `path`; errors name the file, the key and the value.
    package static func load(path: String) throws(UsageError) -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read the configuration file \(path): no such readable file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw UsageError("configuration file \(path) is not UTF-8 text")
        }
        return try parse(text, source: path)
    }

    package static func parse(_ text: String, source: String) throws(UsageError) -> Configuration {
        let root = try YAMLErrorText.compose(text, what: "configuration file \(source)")
        var config = Configuration()
        guard let root else { return config }  // an empty file is a valid, empty configuration
        try config.collect(root, prefix: "", source: source)
        let (entityTypes, blobStores) = (root.mapping?["entity_types"], root.mapping?["blob_stores"])
        config.registry = try RegistryParser().parse(entityTypes: entityTypes, blobStores: blobStores, source: source)
        config.registryText = RegistryText.serialize(entityTypes: entityTypes, blobStores: blobStores)
        return config
    }

    /// Walks mappings down to scalars, checking each key and value on the way.
    private mutating func collect(_ node: Node, prefix: String, source: String) throws(UsageError) {
        let place = prefix.isEmpty ? "the top level" : "key \(prefix)"
        guard let mapping = node.mapping else {
            throw UsageError("configuration file \(source): \(place) must be a mapping of keys to values")
        }
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else {
                throw UsageError("configuration file \(source): a key at \(place) is not a string")
            }
            let full = prefix.isEmpty ? name : "\(prefix).\(name)"
            if prefix.isEmpty, Self.sections.contains(name) { continue }  // parsed by RegistryParser
            if let kind = Self.keys[full] {
                guard let scalar = value.scalar else {
                    throw UsageError("configuration file \(source): key \(full) must be a single value")
                }
                try Self.check(scalar.string, kind: kind, key: full, source: source)
                values[full] = scalar.string
            } else if Self.keys.keys.contains(where: { $0.hasPrefix(full + ".") }) {
                try collect(value, prefix: full, source: source)
            } else {
                let accepted = Self.acceptedNames(under: prefix)
                throw UsageError(
                    "configuration file \(source): unknown key \(full); accepted at \(place): "
                        + accepted.joined(separator: ", "))
            }
        }
    }

    private static func check(_ value: String, kind: Kind, key: String, source: String) throws(UsageError) {
        let valid: Bool
        switch kind {
        case .text: valid = true
        case .duration: valid = DurationText.parse(value) != nil
        case .positiveInteger: valid = Int(value).map { $0 >= 1 } ?? false
        case .boolean: valid = BooleanText.parse(value) != nil
        case .byteSize: valid = ByteSizeText.parse(value).map { $0 >= 1 } ?? false
        case .integer(let range): valid = Int(value).map(range.contains) ?? false
        case .choice(let words): valid = words.contains(value)
        case .durationOrOff(let range):
            valid =
                value.trimmingCharacters(in: .whitespaces) == "0"
                || DurationText.parse(value).map { $0 == .zero || range.contains($0) } ?? false
        }
        if !valid {
            throw UsageError(
                "configuration file \(source): key \(key) has the value \"\(value)\"; expected \(kind.accepted)")
        }
    }

    /// The next path components under `prefix` ("worker" → concurrency, lease, …).
    static func acceptedNames(under prefix: String) -> [String] {
        let lead = prefix.isEmpty ? "" : prefix + "."
        let names = keys.keys.filter { $0.hasPrefix(lead) }.map { key in
            String(key.dropFirst(lead.count).split(separator: ".").first ?? "")
        }
        return Array(Set(names + (prefix.isEmpty ? sections : []))).sorted()
    }
}

/// Sizes in configuration: a number of bytes (`1048576`), or a number with a unit — decimal
/// `kB`, `MB`, `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB` (powers of
/// 1024); units are case-insensitive, a space before them is allowed.
package enum ByteSizeText {
    package static let accepted =
        "a whole number of bytes, optionally with a unit B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB "
        + "(powers of 1024), e.g. 1048576, 500MB, 2GiB"

    private static let units: [String: Int64] = [
        "": 1, "b": 1, "k": 1000, "kb": 1000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
        "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
    ]

    /// The size in bytes, or nil when `text` is not a size or overflows.
    package static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int64(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        guard let scale = units[unit] else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// `bytes` for people: `512 B`, `1.5 kB`, `2.0 GB` (decimal units, one decimal).
    package static func format(_ bytes: Int64) -> String {
        if bytes < 1000 { return "\(bytes) B" }
        var value = Double(bytes)
        for unit in ["kB", "MB", "GB", "TB", "PB"] {
            value /= 1000
            if value < 999.95 || unit == "PB" { return String(format: "%.1f", value) + " " + unit }
        }
        return "\(bytes) B"
    }
}
