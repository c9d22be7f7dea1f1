import ArgumentParser
import LetheConfiguration

/// Where `/metrics`, `/healthz` and `/readyz` listen: `HOST:PORT` with an IPv4 address,
/// `localhost` or a bracketed IPv6 address, and a port from 0 (any free port: the bound
/// one is logged) to 65535.
package struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    package enum Host: Sendable, Equatable {
        case ip4(String)
        case ip6(String)
    }

    package var host: Host
    package var port: UInt16

    package static let accepted =
        "HOST:PORT with an IPv4 address, localhost or a bracketed IPv6 address and a port from 0 to 65535, "
        + "e.g. 0.0.0.0:9464, 127.0.0.1:0 or [::]:9464"

    package var description: String {
        switch host {
        case .ip4(let address): return "\(address):\(port)"
        case .ip6(let address): return "[\(address)]:\(port)"
        }
    }

    /// Parses `text`; `source` names where it came from in the error (`--metrics-address`).
    package init(parsing text: String, source: String) throws(UsageError) {
        let refuse = UsageError("\(source) \"\(text)\" is not an address; expected \(Self.accepted)")
        guard let colon = text.lastIndex(of: ":") else { throw refuse }
        let hostText = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), let port = UInt16(portText) else { throw refuse }
        if hostText.hasPrefix("["), hostText.hasSuffix("]"), hostText.count > 2 {
            let inner = String(hostText.dropFirst().dropLast())
            guard inner.contains(":"), inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw refuse
            }
            host = .ip6(inner)
        } else if hostText.lowercased() == "localhost" {
            host = .ip4("127.0.0.1")
        } else {
            let parts = hostText.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4,
                parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil })
            else { throw refuse }
            host = .ip4(hostText)
        }
        self.port = port
    }
}

/// `--metrics-address`, on the commands that run services.
package struct MetricsOptions: ParsableArguments {
    package init() {}

    @Option(
        name: .customLong("metrics-address"),
        help: ArgumentHelp(
            "Serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT (default: metrics.address, else off).",
            valueName: "host:port"))
    var metricsAddress: String?

    /// The address from the flag, else `metrics.address`; nil when neither is set.
    func address(_ context: CommandContext) throws(UsageError) -> MetricsAddress? {
        if let metricsAddress { return try MetricsAddress(parsing: metricsAddress, source: "--metrics-address") }
        if let configured = context.configuration.metricsAddress {
            return try MetricsAddress(
                parsing: configured, source: "configuration key metrics.address (\(context.configurationPath ?? "-"))")
        }
        return nil
    }
}
