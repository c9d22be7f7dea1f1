import CoreMetrics
import LetheMetrics
import Prometheus
import Synchronization

/// The swift-metrics factory behind `/metrics`: every metric goes into one Prometheus
/// registry with the help text and buckets of its `LetheMetric` entry (swift-prometheus's
/// own factory writes no help, which `promtool check metrics` refuses).
struct PrometheusExport: MetricsFactory {
    let registry = PrometheusCollectorRegistry()
    private let catalog = Dictionary(LetheMetric.all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    private static let bootstrapped = Mutex<PrometheusExport?>(nil)

    /// The process's exporter, bootstrapping swift-metrics with it on first use.
    static func shared() -> PrometheusExport {
        bootstrapped.withLock { current in
            if let current { return current }
            let export = PrometheusExport()
            MetricsSystem.bootstrap(export)
            current = export
            return export
        }
    }

    /// The Prometheus text exposition of every metric.
    func text() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }

    /// The name as given (unit included) with the catalog's help text.
    private func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: catalog[name]?.help ?? name)
    }

    private func buckets(_ name: String) -> [Double] {
        catalog[name].map(\.buckets).flatMap { $0.isEmpty ? nil : $0 } ?? [0.01, 0.1, 1, 10, 100]
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(
            descriptor: descriptor(label), labels: dimensions,
            buckets: buckets(label).map { Duration.milliseconds($0 * 1000) })
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
