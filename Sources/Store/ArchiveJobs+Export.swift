import Foundation
import Postgres

/// The packing transaction's settings and the archived blobs' contents in slices (the
/// per-part reads and writes are in ArchiveJobs+PackPart.swift).
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

    /// `length` bytes of one of the account's blobs from `offset` (1-based).
    public func blobSlice(
        _ store: CompiledBlobStore, key: String, offset: Int64, length: Int64, account: String,
        on connection: Connection
    ) throws -> Data {
        guard let slice = store.contentSlice else { return Data() }
        return try connection.query(slice, [key, offset, length, account])[0].decode(Data.self, at: 0)
    }
}
