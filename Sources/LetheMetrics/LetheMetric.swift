import CoreMetrics

/// One metric Lethe exports: its Prometheus name (units in the name), type, label names
/// and help text. Labels stay bounded: task kinds, task states, entity-type and blob-store
/// names from the registry, site kinds and outcomes; never an account id.
///
/// Values go through swift-metrics, so they cost nothing until a command bootstraps an
/// exporter (`--metrics-address`); docs/metrics.md lists `all`.
public struct LetheMetric: Sendable, Hashable {
    /// The Prometheus metric type.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public let name: String
    public let kind: Kind
    public let labels: [String]
    public let help: String
    /// Histogram bucket upper bounds in seconds (empty for counters and gauges).
    public let buckets: [Double]

    init(_ name: String, _ kind: Kind, labels: [String] = [], help: String, buckets: [Double] = []) {
        self.name = name
        self.kind = kind
        self.labels = labels
        self.help = help
        self.buckets = buckets
    }

    private func dimensions(_ values: [String]) -> [(String, String)] {
        precondition(values.count == labels.count, "\(name) takes the labels \(labels), given \(values)")
        return Array(zip(labels, values))
    }

    /// Adds `amount` to a counter.
    public func increment(by amount: Int = 1, _ values: String...) {
        precondition(kind == .counter, "\(name) is not a counter")
        guard amount > 0 else { return }
        Counter(label: name, dimensions: dimensions(values)).increment(by: amount)
    }

    /// Sets a gauge.
    public func set(_ value: Double, _ values: String...) {
        precondition(kind == .gauge, "\(name) is not a gauge")
        Gauge(label: name, dimensions: dimensions(values)).record(value)
    }

    /// Records one observation of a duration histogram.
    public func observe(_ duration: Duration, _ values: String...) {
        precondition(kind == .histogram, "\(name) is not a histogram")
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        Timer(label: name, dimensions: dimensions(values)).recordNanoseconds(max(nanoseconds, 0))
    }
}
