import Foundation

/// The samples of `lethe bench soak` as columns, written as CSV, and whether each series
/// stays flat: the drift of a straight line fitted to the last half of the run, against a
/// tenth of the series' peak. The first half's slope is shown beside it (warm-up).
struct SoakSeries {
    /// Column names, `elapsed_s` first.
    let columns: [String]
    /// Cumulative counters (rows ingested, rows deleted): shown, never judged.
    let counters: Set<String>
    private(set) var rows: [[Double]] = []

    init(columns: [String], counters: Set<String>) {
        self.columns = columns
        self.counters = counters
    }

    mutating func append(_ row: [Double]) {
        precondition(row.count == columns.count, "a soak sample has \(row.count) values for \(columns.count) columns")
        rows.append(row)
    }

    /// The CSV text: a header line, then a line a sample.
    var csv: String {
        var lines = [columns.joined(separator: ",")]
        for row in rows {
            lines.append(
                row.map { $0 == $0.rounded() ? String(Int64($0)) : String(format: "%.2f", $0) }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One judged series.
    struct Verdict {
        var name: String
        var firstMean: Double
        var lastMean: Double
        /// Per minute, of a least-squares line through each half.
        var firstSlope: Double
        var lastSlope: Double
        /// `flat`, `rising` or `falling` (over the last half), or `too short`.
        var verdict: String
    }

    /// Each non-counter series: flat when the last half's fitted line moves by at most a tenth
    /// of the series' largest value (or by at most 1 where that is smaller, for counts near 0).
    var verdicts: [Verdict] {
        guard rows.count >= 4 else {
            return columns.dropFirst().map {
                Verdict(name: $0, firstMean: 0, lastMean: 0, firstSlope: 0, lastSlope: 0, verdict: "too short")
            }
        }
        let half = rows.count / 2
        return columns.indices.dropFirst().filter { !counters.contains(columns[$0]) }.map { column in
            let points = rows.map { ($0[0], $0[column]) }
            let first = Array(points[..<half])
            let last = Array(points[half...])
            let lastSlope = Self.slope(last)
            let span = (last.last!.0 - last.first!.0)
            let drift = lastSlope * span
            let peak = points.map { abs($0.1) }.max() ?? 0
            let tolerance = max(0.1 * peak, 1)
            let verdict = abs(drift) <= tolerance ? "flat" : drift > 0 ? "rising" : "falling"
            return Verdict(
                name: columns[column], firstMean: Self.mean(first), lastMean: Self.mean(last),
                firstSlope: Self.slope(first) * 60, lastSlope: lastSlope * 60, verdict: verdict)
        }
    }

    static func mean(_ points: [(Double, Double)]) -> Double {
        points.isEmpty ? 0 : points.map(\.1).reduce(0, +) / Double(points.count)
    }

    /// The least-squares slope of y over x (units of y per unit of x); 0 for fewer than two points.
    static func slope(_ points: [(Double, Double)]) -> Double {
        guard points.count >= 2 else { return 0 }
        let n = Double(points.count)
        let meanX = points.map(\.0).reduce(0, +) / n
        let meanY = points.map(\.1).reduce(0, +) / n
        let covariance = points.map { ($0.0 - meanX) * ($0.1 - meanY) }.reduce(0, +)
        let variance = points.map { ($0.0 - meanX) * ($0.0 - meanX) }.reduce(0, +)
        return variance == 0 ? 0 : covariance / variance
    }
}
