import FlyingFox
import FlyingSocks
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Serves `/metrics` (Prometheus text), `/healthz` and `/readyz` on `--metrics-address`.
///
/// FlyingFox runs the HTTP side: async/await over non-blocking sockets (no NIO), small
/// enough to build in seconds. Database work for the probes and the queue gauges goes
/// through their own `ConnectionThread`s, never the cooperative pool.
final class ObservabilityServer: Service {
    let address: MetricsAddress
    private let export: PrometheusExport
    private let checks: HealthChecks
    private let queue: QueueGauges?
    private let logger: Logger
    /// Opens once the socket listens; the other services wait for it (`AfterListening`).
    let gate = ListenGate()

    init(address: MetricsAddress, checks: HealthChecks, queue: QueueGauges?, logger: Logger) {
        self.address = address
        self.export = PrometheusExport.shared()
        self.checks = checks
        self.queue = queue
        self.logger = logger
    }

    func run() async throws {
        let server: HTTPServer
        switch address.host {
        case .ip4(let host):
            server = HTTPServer(address: try .inet(ip4: host, port: address.port), logger: DisabledLogger.disabled)
        case .ip6(let host):
            server = HTTPServer(address: try .inet6(ip6: host, port: address.port), logger: DisabledLogger.disabled)
        }
        await addRoutes(server)
        do {
            try await serve(server)
        } catch {
            await close()
            throw error
        }
        await close()
    }

    private func close() async {
        await checks.close()
        await queue?.close()
    }

    private func serve(_ server: HTTPServer) async throws {
        let (gate, address, logger) = (self.gate, self.address, self.logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await server.run()
                } catch {
                    guard gate.isOpen else {
                        let failure = ObservabilityServerError(address: address, underlying: error)
                        gate.fail(failure)
                        throw failure
                    }
                }
            }
            group.addTask {
                while !(await server.isListening) {
                    if gate.hasFailed { return }
                    try await Task.sleep(for: .milliseconds(10))
                }
                let bound = await server.listeningAddress.map(Self.text) ?? "\(address)"
                logger.notice(
                    "serving /metrics, /healthz and /readyz on http://\(bound)", metadata: ["lethe.address": "\(bound)"]
                )
                gate.open()
                try? await gracefulShutdown()
                await server.stop(timeout: 1)
            }
        }
    }

    private func addRoutes(_ server: HTTPServer) async {
        let (export, checks, queue) = (self.export, self.checks, self.queue)
        await server.appendRoute("GET /metrics") { _ in
            await queue?.refreshIfDue()
            return HTTPResponse(
                statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: Data(export.text()))
        }
        await server.appendRoute("GET /healthz") { _ in
            if let problem = await checks.live() { return Self.plain(.serviceUnavailable, problem) }
            return Self.plain(.ok, "ok")
        }
        await server.appendRoute("GET /readyz") { _ in
            let problems = await checks.ready()
            if problems.isEmpty { return Self.plain(.ok, "ready") }
            return Self.plain(.serviceUnavailable, problems.joined(separator: "\n"))
        }
        await server.appendRoute("*") { _ in Self.plain(.notFound, "not found: try /metrics, /healthz or /readyz") }
    }

    private static func plain(_ status: HTTPStatusCode, _ text: String) -> HTTPResponse {
        HTTPResponse(
            statusCode: status, headers: [.contentType: "text/plain; charset=utf-8"], body: Data((text + "\n").utf8))
    }

    private static func text(_ address: Socket.Address) -> String {
        switch address {
        case .ip4(let host, let port): return "\(host):\(port)"
        case .ip6(let host, let port): return "[\(host)]:\(port)"
        case .unix(let path): return path
        }
    }
}

/// The metrics endpoint could not listen (the port is taken, the address is not local).
struct ObservabilityServerError: Error, CustomStringConvertible {
    var address: MetricsAddress
    var underlying: any Error
    var description: String {
        "cannot serve metrics on \(address) (--metrics-address / metrics.address): \(underlying); "
            + "is another process listening on that port?"
    }
}

/// Opens once the metrics endpoint listens, or fails with why it cannot.
final class ListenGate: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Void, any Error>])
        case open
        case failed(any Error)
    }
    private let state = Mutex(State.waiting([]))

    var isOpen: Bool { state.withLock { if case .open = $0 { true } else { false } } }
    var hasFailed: Bool { state.withLock { if case .failed = $0 { true } else { false } } }

    func open() { settle(.open) }
    func fail(_ error: any Error) { settle(.failed(error)) }

    private func settle(_ final: State) {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard case .waiting(let list) = state else { return [] }
            state = final
            return list
        }
        for continuation in waiting {
            if case .failed(let error) = final { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    /// Returns once open; throws the endpoint's failure.
    func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { state -> Result<Void, any Error>? in
                switch state {
                case .waiting(let list):
                    state = .waiting(list + [continuation])
                    return nil
                case .open: return .success(())
                case .failed(let error): return .failure(error)
                }
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

/// Runs `service` once the metrics endpoint listens: a taken port stops the process
/// before it claims or schedules anything.
struct AfterListening: Service {
    let gate: ListenGate
    let service: any Service

    func run() async throws {
        try await gate.wait()  // the endpoint's failure, if any, ends the group with its cause
        try await service.run()
    }
}
