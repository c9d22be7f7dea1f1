import CLibPQ
import Foundation

/// A libpq connection. Wraps `PGconn`; closed by `close()` or on deinit.
///
/// Every call blocks its thread, so a `Connection` lives on one dedicated thread (see
/// `ConnectionThread`) and is not `Sendable`. After an error that broke the connection,
/// `isBroken` is true and every further call throws `.connectionClosed`: the owner replaces
/// it instead of reusing a broken handle.
public final class Connection {
    private var handle: OpaquePointer?
    /// Unique to this session: a reconnect gets a new one, even if the server reuses the
    /// backend process id. Session state (LISTEN, advisory locks) belongs to it.
    public let sessionID = UUID()
    /// True once the server connection is known to be gone.
    public private(set) var isBroken = false
    /// True when the server refused the `options` startup parameter that `defaults` asked
    /// for, so this connection was opened without it (see `connect`).
    public private(set) var optionsRefused = false

    private init(takingOwnershipOf handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Opens a connection. `conninfo` is a libpq connection string or URL; an empty string
    /// uses libpq's `PG*` environment variables, exactly as psql does. Unless the caller sets
    /// them: `connect_timeout` is 10 s, `application_name` is `applicationName`, TCP
    /// keepalives notice a dead peer within about 25 s, and data unacknowledged for 30 s
    /// (`tcp_user_timeout`) breaks the connection. `defaults` adds more keywords the
    /// same way (the connection string wins). PgBouncer refuses an `options` startup
    /// parameter ("unsupported startup parameter: options"): when one from `defaults` is
    /// refused, the connection is opened again without it and `optionsRefused` is true.
    /// Wraps `PQconnectdbParams`.
    public static func connect(
        _ conninfo: String, applicationName: String = "lethe", defaults: [(String, String)] = []
    ) throws -> Connection {
        do {
            return try open(conninfo, applicationName: applicationName, defaults: defaults)
        } catch let error as PostgresError
            where defaults.contains(where: { $0.0 == "options" }) && error.refusesOptionsParameter
        {
            let connection = try open(
                conninfo, applicationName: applicationName, defaults: defaults.filter { $0.0 != "options" })
            connection.optionsRefused = true
            return connection
        }
    }

    private static func open(
        _ conninfo: String, applicationName: String, defaults: [(String, String)]
    ) throws -> Connection {
        if !conninfo.isEmpty { try ConnectionString.validate(conninfo) }
        // Earlier keywords are overridden by the same keyword inside `conninfo` (expanded last).
        var settings: [(String, String)] = [
            ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
            ("tcp_user_timeout", "30000"),  // unacknowledged data for 30 s: the peer is gone
        ]
        if ProcessInfo.processInfo.environment["PGCONNECT_TIMEOUT"] == nil {
            settings.append(("connect_timeout", "10"))
        }
        settings += defaults
        settings.append(("fallback_application_name", applicationName))
        settings.append(("dbname", conninfo))
        let keywords = settings.map(\.0)
        let values = settings.map(\.1)
        let handle = withCStringArray(keywords) { k in
            withCStringArray(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let handle else {
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            // libpq may quote parts of the connection string back: never a password.
            let reason = ConnectionString.scrub(
                String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines(), conninfo: conninfo)
            PQfinish(handle)
            throw PostgresError(
                .connectionFailed, sqlState: .sqlClientUnableToEstablishConnection,
                message: "cannot connect to PostgreSQL: \(reason)")
        }
        // NOTICEs (e.g. "relation already exists, skipping") would go to stderr otherwise.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        let connection = Connection(takingOwnershipOf: handle)
        if let dateStyle = connection.parameterStatus("DateStyle"), !dateStyle.hasPrefix("ISO") {
            try connection.execute("SET DateStyle TO ISO")
        }
        // Row JSON (and so every archive hash) renders timestamptz in the session's zone: a
        // worker whose sessions start in another zone (PGTZ, a role or database default) would
        // never match the hashes another worker recorded, and its rows would never be archived.
        if let zone = connection.parameterStatus("TimeZone"), zone != "UTC", zone != "Etc/UTC" {
            try connection.execute("SET TimeZone TO 'UTC'")
        }
        return connection
    }

    /// Closes the connection now. Wraps `PQfinish`. Further calls throw `.connectionClosed`.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        isBroken = true
    }

    /// The server process serving this connection. Wraps `PQbackendPID`.
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// The server version as an integer, e.g. 150018. Wraps `PQserverVersion`.
    public var serverVersion: Int { handle.map { Int(PQserverVersion($0)) } ?? 0 }

    /// A server parameter reported at connect time (`server_version`, `TimeZone`, …).
    /// Wraps `PQparameterStatus`.
    public func parameterStatus(_ name: String) -> String? {
        guard let handle, let value = PQparameterStatus(handle, name) else { return nil }
        return String(cString: value)
    }

    /// True inside a transaction block (including a failed one). Wraps `PQtransactionStatus`.
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    /// True inside a transaction block that an error has aborted.
    var isInFailedTransaction: Bool {
        guard let handle else { return false }
        return PQtransactionStatus(handle) == PQTRANS_INERROR
    }

    /// Runs one statement with bound parameters and returns its rows.
    /// Wraps `PQexecParams` (text results; `Data` parameters go binary).
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws -> QueryResult {
        let handle = try liveHandle()
        let params = parameters.map(\.postgresParameter)
        for (index, parameter) in params.enumerated() {
            // C strings end at NUL, and PostgreSQL text cannot hold one: refuse, never truncate.
            if case .text(let text) = parameter.value, text.utf8.contains(0) {
                throw PostgresError(
                    .encoding,
                    message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot hold")
            }
        }
        let result = PreparedParameters(params).withC { types, values, lengths, formats in
            PQexecParams(handle, sql, Int32(params.count), types, values, lengths, formats, 0)
        }
        return try check(result, expecting: [PGRES_TUPLES_OK, PGRES_COMMAND_OK])
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws -> Int {
        try query(sql, parameters).affectedRows
    }

    /// Runs several `;`-separated statements without parameters (a migration file).
    /// Wraps `PQexec`; statements run in the caller's transaction, if any.
    public func executeScript(_ sql: String) throws {
        let handle = try liveHandle()
        _ = try check(PQexec(handle, sql), expecting: [PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY])
    }

    /// `value` as a quoted SQL literal, for the rare statement that cannot take parameters
    /// (`COPY (query) TO STDOUT`). Wraps `PQescapeLiteral`.
    public func literal(_ value: String) throws -> String {
        let handle = try liveHandle()
        guard let escaped = PQescapeLiteral(handle, value, value.utf8.count) else {
            throw PostgresError(.encoding, message: "cannot quote a literal: \(lastErrorMessage())")
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    // MARK: - Funnel

    func liveHandle() throws -> OpaquePointer {
        guard let handle, !isBroken else {
            throw PostgresError(.connectionClosed, message: "the connection is closed")
        }
        return handle
    }

    /// Turns a `PGresult` into a `QueryResult`, or into a `PostgresError` carrying the
    /// server's fields; marks the connection broken when libpq reports it gone.
    func check(_ result: OpaquePointer?, expecting expected: [ExecStatusType]) throws -> QueryResult {
        guard let result else {
            markBrokenIfBad()
            throw connectionError(fallback: "libpq returned no result")
        }
        let status = PQresultStatus(result)
        if expected.contains(status) {
            return QueryResult(takingOwnershipOf: result)
        }
        defer { PQclear(result) }
        if status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR {
            let error = serverError(from: result)
            markBrokenIfBad()
            if isBroken, error.sqlState == nil {
                throw connectionError(fallback: error.message)
            }
            throw error
        }
        throw PostgresError(
            .protocolViolation, message: "unexpected result status \(String(cString: PQresStatus(status)))")
    }

    func serverError(from result: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let message =
            field(CLibPQ_DIAG_MESSAGE_PRIMARY)
            ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines()
        return PostgresError(
            .server, sqlState: field(CLibPQ_DIAG_SQLSTATE).map(SQLState.init(rawValue:)),
            message: message, detail: field(CLibPQ_DIAG_MESSAGE_DETAIL), hint: field(CLibPQ_DIAG_MESSAGE_HINT),
            constraint: field(CLibPQ_DIAG_CONSTRAINT_NAME))
    }

    func markBrokenIfBad() {
        if let handle, PQstatus(handle) == CONNECTION_BAD { isBroken = true }
    }

    func lastErrorMessage() -> String {
        guard let handle else { return "connection closed" }
        return String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines()
    }

    func connectionError(fallback: String) -> PostgresError {
        let reason = lastErrorMessage()
        return PostgresError(
            isBroken ? .connectionClosed : .protocolViolation,
            sqlState: isBroken ? .connectionFailure : nil,
            message: reason.isEmpty ? fallback : reason)
    }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let owned = strings.map { strdup($0) }
    defer { owned.forEach { free($0) } }
    var pointers = owned.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Parameters laid out as the four parallel arrays `PQexecParams` takes.
private struct PreparedParameters {
    let parameters: [PostgresParameter]
    init(_ parameters: [PostgresParameter]) { self.parameters = parameters }

    func withC<R>(
        _ body: (
            UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
            UnsafePointer<Int32>?
        ) -> R
    ) -> R {
        if parameters.isEmpty { return body(nil, nil, nil, nil) }
        var buffers: [UnsafeMutableRawPointer?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var types: [Oid] = []
        defer { buffers.forEach { free($0) } }
        for parameter in parameters {
            types.append(parameter.typeOID)
            switch parameter.value {
            case .null:
                buffers.append(nil)
                lengths.append(0)
                formats.append(0)
            case .text(let text):
                buffers.append(UnsafeMutableRawPointer(strdup(text)))
                lengths.append(0)
                formats.append(0)
            case .binary(let bytes):
                let buffer = malloc(max(bytes.count, 1))!
                bytes.withUnsafeBytes { source in
                    if let base = source.baseAddress { buffer.copyMemory(from: base, byteCount: source.count) }
                }
                buffers.append(buffer)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            }
        }
        let values = buffers.map { $0.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
        return types.withUnsafeBufferPointer { t in
            values.withUnsafeBufferPointer { v in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in
                        body(t.baseAddress, v.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }
}
