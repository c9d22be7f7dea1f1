import Foundation
import Postgres

/// The packing transaction's reads: the archived blobs' contents in slices, each table's
/// rows as COPY lines (`hash \u{02} JSON`), and forgetting rows the export left out.
extension ArchiveJobs {
    /// Turns the planner's sorting off for this transaction only and returns the setting to
    /// give `restoreSorting`. The manifest's statistics predate the plan (nothing has
    /// analysed the rows it just recorded), so the planner expects almost nothing to export
    /// and would join, then sort everything by key before the first row leaves. Without
    /// sorting it walks the manifest's key index and rows flow at once, in the same order.
    public func turnSortingOff(on connection: Connection) throws -> String {
        let sorting = try connection.query("SELECT current_setting('enable_sort')")[0].decode(String.self, at: 0)
        try connection.execute("SELECT set_config('enable_sort', 'off', true)")
        return sorting
    }

    /// Puts back the setting `turnSortingOff` returned; a failure is ignored (the transaction
    /// ends soon, and with it the setting).
    public func restoreSorting(_ sorting: String, on connection: Connection) {
        _ = try? connection.execute("SELECT set_config('enable_sort', $1, true)", [sorting])
    }

    /// The job's archived blobs of `store` with their content sizes (-1: NULL content), by
    /// key; empty for a store without a content column.
    public func blobSizes(
        _ store: CompiledBlobStore, job: UUID, on connection: Connection
    ) throws -> [(key: String, size: Int64)] {
        guard let sizes = store.contentSizes else { return [] }
        return try connection.query(sizes, [job]).map { try $0.decode((String, Int64).self) }
    }

    /// `length` bytes of one of the account's blobs from `offset` (1-based).
    public func blobSlice(
        _ store: CompiledBlobStore, key: String, offset: Int64, length: Int64, account: String,
        on connection: Connection
    ) throws -> Data {
        guard let slice = store.contentSlice else { return Data() }
        return try connection.query(slice, [key, offset, length, account])[0].decode(Data.self, at: 0)
    }

    /// Streams the job's archived rows of `store` (JSON lines, the content column null) to `line`.
    public func exportBlobRows(
        _ store: CompiledBlobStore, job: UUID, on connection: Connection,
        _ line: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let literal = try connection.literal(job.uuidString.lowercased())
        try connection.copyOut(store.exportRows(jobLiteral: literal), line)
    }

    /// Streams the job's manifest rows of `type`'s table `index` that still have a hash to
    /// `line`, each as the recorded hash, `\u{02}`, and the row as JSON as it is now.
    public func exportRows(
        _ type: CompiledEntityType, table index: Int, job: UUID, on connection: Connection,
        _ line: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let literal = try connection.literal(job.uuidString.lowercased())
        try connection.copyOut(type.exportRows(index, jobLiteral: literal), line)
    }

    /// Forgets the hash of `type`'s table `index` rows that are gone or no longer hash as
    /// recorded: the export left them out, so they must never be deleted as archived.
    public func forgetChangedRows(
        _ type: CompiledEntityType, table index: Int, job: UUID, on connection: Connection
    )
        throws
    {
        try connection.execute(type.forgetChangedRows(index), [job])
    }
}
