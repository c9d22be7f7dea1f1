/// An error from the PostgreSQL layer.
///
/// `description` is safe to log: it holds the code, the SQLSTATE and the server's primary
/// message, never query parameters or connection passwords. `debugDescription` adds the
/// server's detail and hint, which may quote row values.
public struct PostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// What went wrong, independent of the server's wording.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case connectionFailed, connectionClosed, server, decoding, encoding, copy,
                timeout, protocolViolation, invalidConnectionString
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        public var description: String { base.rawValue }

        /// The server could not be reached or refused the connection.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection broke, or was closed, before or during a call.
        public static let connectionClosed = Code(.connectionClosed)
        /// The server reported an error for a statement (see `sqlState`).
        public static let server = Code(.server)
        /// A column value could not be decoded as the requested Swift type.
        public static let decoding = Code(.decoding)
        /// A Swift value could not be encoded as a parameter.
        public static let encoding = Code(.encoding)
        /// A COPY transfer failed.
        public static let copy = Code(.copy)
        /// A wait ran out of time.
        public static let timeout = Code(.timeout)
        /// libpq returned something this layer did not expect.
        public static let protocolViolation = Code(.protocolViolation)
        /// A connection string or URL that libpq cannot parse.
        public static let invalidConnectionString = Code(.invalidConnectionString)
    }

    public var code: Code
    /// The server's SQLSTATE, when the server reported the error.
    public var sqlState: SQLState?
    /// The primary message (the server's, or this layer's), without parameters or secrets.
    public var message: String
    /// The server's DETAIL field; may quote row values, so only in `debugDescription`.
    public var detail: String?
    /// The server's HINT field.
    public var hint: String?
    /// The constraint the server named, for constraint violations.
    public var constraint: String?

    public init(
        _ code: Code, sqlState: SQLState? = nil, message: String, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil
    ) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
    }

    /// True when the connection that raised this error can no longer be used.
    public var isConnectionLost: Bool {
        code == .connectionClosed || code == .connectionFailed || sqlState?.errorClass == "08"
            || sqlState == .adminShutdown || sqlState == .crashShutdown
    }

    public var description: String {
        if let sqlState { return "\(message) (\(code), SQLSTATE \(sqlState))" }
        return "\(message) (\(code))"
    }

    public var debugDescription: String {
        var text = description
        if let detail { text += " (detail: \(detail))" }
        if let hint { text += " (hint: \(hint))" }
        if let constraint { text += " (constraint: \(constraint))" }
        return text
    }
}

extension PostgresError {
    /// True for PgBouncer's refusal of the `options` startup parameter.
    var refusesOptionsParameter: Bool {
        code == .connectionFailed && message.contains("unsupported startup parameter: options")
    }
}
