import Foundation
import Logging
import Synchronization

/// Sets up swift-log once per process: human-readable lines (`text`) or one JSON object
/// per line (`json`) on standard error.
enum LetheLogging {
    /// The formats `--log-format` and `log.format` accept.
    enum Format: String, CaseIterable {
        case text, json
    }

    private static let done = Mutex(false)

    static func bootstrap(level: Logger.Level, format: Format = .text) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
