import CLibPQ

/// The rows of one statement. Wraps a `PGresult`, freed on deinit; confined, like its
/// `Connection`, to the thread that made it.
public final class QueryResult: Sequence {
    private let handle: OpaquePointer
    /// Number of rows returned.
    public let count: Int
    /// Number of columns per row.
    public let columnCount: Int

    init(takingOwnershipOf handle: OpaquePointer) {
        self.handle = handle
        self.count = Int(PQntuples(handle))
        self.columnCount = Int(PQnfields(handle))
    }

    deinit { PQclear(handle) }

    /// Rows affected by an INSERT, UPDATE, DELETE, MERGE, MOVE, FETCH or COPY.
    /// Wraps `PQcmdTuples`; 0 for other commands.
    public var affectedRows: Int {
        guard let text = PQcmdTuples(handle) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The column names, in order. Wraps `PQfname`.
    public var columnNames: [String] {
        (0..<columnCount).map { String(cString: PQfname(handle, Int32($0))) }
    }

    /// The index of the column called `name`, or nil. Wraps `PQfnumber`.
    public func columnIndex(_ name: String) -> Int? {
        // PQfnumber folds unquoted names to lower case; quote to match exactly.
        let index = Int(PQfnumber(handle, SQLIdentifier.quote(name)))
        return index >= 0 ? index : nil
    }

    public subscript(row: Int) -> Row {
        precondition(row >= 0 && row < count, "row \(row) out of range 0..<\(count)")
        return Row(result: self, index: row)
    }

    public func makeIterator() -> AnyIterator<Row> {
        var next = 0
        return AnyIterator {
            guard next < self.count else { return nil }
            defer { next += 1 }
            return Row(result: self, index: next)
        }
    }

    /// The first row, if any.
    public var first: Row? { count > 0 ? self[0] : nil }

    func isNull(row: Int, column: Int) -> Bool { PQgetisnull(handle, Int32(row), Int32(column)) == 1 }

    func withValue<T>(row: Int, column: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let pointer = PQgetvalue(handle, Int32(row), Int32(column))
        let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    func columnType(_ column: Int) -> UInt32 { PQftype(handle, Int32(column)) }
    func columnName(_ column: Int) -> String { String(cString: PQfname(handle, Int32(column))) }
}

/// One row of a `QueryResult`.
public struct Row {
    let result: QueryResult
    /// The row's position in its result.
    public let index: Int

    /// Decodes column `column` as `T`; NULL becomes nil for optional `T`, an error otherwise.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        precondition(column >= 0 && column < result.columnCount, "column \(column) out of range")
        if result.isNull(row: index, column: column) {
            guard let null = T.postgresNull else {
                throw PostgresError(
                    .decoding, message: "column \(result.columnName(column)) is NULL; expected \(T.self)")
            }
            return null
        }
        do {
            let oid = result.columnType(column)
            return try result.withValue(row: index, column: column) { try T(postgresText: $0, type: oid) }
        } catch let failure as PostgresDecodingFailure {
            throw PostgresError(
                .decoding,
                message: "column \(result.columnName(column)) cannot be read as \(T.self): \(failure.reason)")
        }
    }

    /// Decodes the column called `name` as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, named name: String) throws -> T {
        guard let column = result.columnIndex(name) else {
            throw PostgresError(.decoding, message: "no column named \(name) in the result")
        }
        return try decode(type, at: column)
    }

    /// Decodes the leading columns as a tuple: `let (id, name) = try row.decode((Int64, String).self)`.
    public func decode<each T: PostgresDecodable>(_ types: (repeat each T).Type) throws -> (repeat each T) {
        var column = 0
        func next<V: PostgresDecodable>(_ type: V.Type) throws -> V {
            defer { column += 1 }
            return try decode(type, at: column)
        }
        return (repeat try next((each T).self))
    }
}
