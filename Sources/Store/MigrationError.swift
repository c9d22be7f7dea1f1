import Foundation

/// Why `lethe migrate` refused to run; each case names the file and what is accepted.
/// All are configuration problems (exit 2), not runtime failures.
public enum MigrationError: Error, Equatable, CustomStringConvertible {
    case directoryUnreadable(String)
    case fileUnreadable(String)
    case invalidFileName(String)
    case notUTF8(String)
    case duplicateVersion(String, String)
    case modifiedAfterApply(fileName: String, applied: String, current: String)
    case appliedFileMissing(version: Int, name: String)
    case outOfOrder(fileName: String, latestApplied: Int)
    case transactionControlInFile(String)
    /// `database.url` reaches PostgreSQL through a connection pooler (applying, `--baseline`).
    case throughPooler

    public var description: String {
        switch self {
        case .directoryUnreadable(let path):
            return "cannot read the migrations directory \(path)"
        case .fileUnreadable(let name):
            return "cannot read migration file \(name)"
        case .invalidFileName(let name):
            return "migration file \(name) is badly named; expected NNNN_name.sql "
                + "(at least four digits, an underscore, then lower-case letters, digits or underscores)"
        case .notUTF8(let name):
            return "migration file \(name) is not UTF-8 text"
        case .duplicateVersion(let a, let b):
            return "migration files \(a) and \(b) have the same version number; each version must be unique"
        case .modifiedAfterApply(let name, let applied, let current):
            return "migration \(name) was edited after it was applied (checksum applied \(applied.prefix(12))…, "
                + "now \(current.prefix(12))…); restore the applied text and put changes in a new file"
        case .appliedFileMissing(let version, let name):
            return "migration \(String(format: "%04d", version))_\(name).sql is recorded as applied but its file "
                + "is missing; is this binary older than the database?"
        case .outOfOrder(let name, let latest):
            return "migration \(name) is pending but version \(latest) is already applied; "
                + "renumber it above \(latest)"
        case .transactionControlInFile(let name):
            return "migration \(name) holds transaction control (BEGIN, COMMIT, ROLLBACK or the like), which "
                + "would end the transaction it runs in; remove it: each file runs in a transaction of its own"
        case .throughPooler:
            return "database.url goes through a connection pooler (such as PgBouncer): migrations hold the migration "
                + "lock as a session advisory lock across one transaction per file, which a pooler hands to other "
                + "clients; run lethe migrate on a direct connection to PostgreSQL (--status and --dry-run may use "
                + "the pooler)"
        }
    }
}
