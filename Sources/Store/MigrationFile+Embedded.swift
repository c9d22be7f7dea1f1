import Foundation
import LetheMigrations

extension MigrationFile {
    /// The migrations compiled into this binary from `migrations/*.sql` at build time, sorted
    /// by version. Same bytes as the files, so the same checksums.
    public static func embedded() throws(MigrationError) -> [MigrationFile] {
        var files: [MigrationFile] = []
        for (name, base64) in EmbeddedMigrations.files {
            guard let data = Data(base64Encoded: base64) else { throw .fileUnreadable(name) }
            files.append(try MigrationFile(fileName: name, contents: data))
        }
        return try ordered(files)
    }
}
