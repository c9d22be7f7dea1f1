import Postgres

extension ArchiveRestore {
    /// Whether the backup log (`lethe.archive_files`) records a file of `account` named
    /// `fileName` whose whole content has this SHA-256: a file Lethe wrote for the account,
    /// unchanged. Lethe never deletes these rows once a job is packed (only its own parts
    /// that packing again from part 1 no longer writes), so every archive it delivered stays recorded.
    public static func isRecorded(
        account: String, fileName: String, sha256: String, on connection: Connection
    ) throws -> Bool {
        try connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM lethe.archive_files
                           WHERE account_id = $1 AND file_name = $2 AND sha256 = $3)
            """, [account, fileName, sha256.lowercased()]
        )[0].decode(Bool.self, at: 0)
    }
}
