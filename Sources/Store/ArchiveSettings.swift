import Foundation
import Postgres
import Retention

/// An account's archive settings as stored (the key sealed).
public struct ArchiveSettings: Sendable, Equatable {
    public var accountID: String
    public var enabled: Bool
    public var hasKey: Bool
    public var scheduleHour: Int
    public var autoDelete: Bool
    public var autoDeleteHour: Int
    public var requireDownload: Bool
    public var nextRunAt: Date?
}

/// A backup site of an account. Secrets stay sealed; `url` never holds a password.
public struct BackupSiteRecord: Sendable, Equatable {
    public var id: Int64
    public var accountID: String
    public var url: String
    public var identityFile: String?
    public var knownHostsFile: String?
    public var hasSecret: Bool
    /// The identity's contents are stored sealed (`identityFile` only says where they came from).
    public var hasStoredIdentity: Bool = false
    /// The known_hosts lines are stored sealed (`knownHostsFile` only says where they came from).
    public var hasStoredKnownHosts: Bool = false
}

/// A site's SSH identity and known_hosts lines as stored sealed, opened (nil: not stored,
/// the site's files are read instead).
public struct StoredSiteKeys: Sendable {
    public var identity: String?
    public var knownHosts: String?
    public init(identity: String? = nil, knownHosts: String? = nil) {
        (self.identity, self.knownHosts) = (identity, knownHosts)
    }
}

/// Changes to an account's archive settings; nil leaves a value as it is.
public struct ArchiveSettingsChange: Sendable {
    public var enabled: Bool?
    public var key: String?
    public var scheduleHour: Int?
    public var autoDelete: Bool?
    public var autoDeleteHour: Int?
    public var requireDownload: Bool?
    public init() {}
}

/// Reads and writes archive settings and backup sites; seals keys and secrets with the
/// master key before they reach the database.
public struct ArchiveAdministration: Sendable {
    public let masterKey: MasterKey?

    public init(masterKey: MasterKey?) { self.masterKey = masterKey }

    /// The context an account's archive key is sealed for.
    public static func keyContext(account: String) -> String { "archive key of account \(account)" }
    /// The context a site's secret is sealed for.
    public static func siteContext(site: Int64) -> String { "backup site \(site)" }
    /// What a site's stored identity is bound to.
    public static func identityContext(site: Int64) -> String { "identity of backup site \(site)" }
    /// What a site's stored known_hosts lines are bound to.
    public static func knownHostsContext(site: Int64) -> String { "known_hosts of backup site \(site)" }

    func requireMasterKey() throws(MasterKeyError) -> MasterKey {
        guard let masterKey else {
            throw MasterKeyError(
                "no master key: set archive.master_key_file in the configuration or LETHE_MASTER_KEY_FILE "
                    + "(a file holding 32 random bytes as hex: openssl rand -hex 32)")
        }
        return masterKey
    }

    /// Applies `change` to the account's settings (creating them), in one transaction.
    /// A weak key and enabling without a key or a site are refused.
    public func update(
        account: String, _ change: ArchiveSettingsChange, on connection: Connection
    ) throws
        -> ArchiveSettings
    {
        if let key = change.key, let violation = ArchiveKeyRule.violation(of: key) {
            throw ArchiveSettingsError(violation)
        }
        for (name, hour) in [("schedule hour", change.scheduleHour), ("auto-delete hour", change.autoDeleteHour)] {
            if let hour, !(0...23).contains(hour) {
                throw ArchiveSettingsError("\(name) \(hour) is not allowed; expected a UTC hour from 0 to 23")
            }
        }
        let sealed = try change.key.map { key in
            try requireMasterKey().seal(key, context: Self.keyContext(account: account))
        }
        return try connection.withTransaction { connection in
            guard
                try connection.query("SELECT 1 FROM lethe.accounts WHERE account_id = $1 FOR UPDATE", [account]).count
                    > 0
            else { throw ArchiveSettingsError("no account \"\(account)\"; add it first: lethe account add \(account)") }
            // A wrong master_key_file must not seal a key beside the ones the right master key
            // sealed: one account would then open only with a key no other secret opens with.
            if sealed != nil, let id = masterKey?.id,
                let other = try connection.query(
                    "SELECT master_key_id FROM lethe.archive_settings WHERE master_key_id <> $1 LIMIT 1", [id]
                ).first?.decode(String.self, at: 0)
            {
                throw ArchiveSettingsError(
                    "the configured master key (\(id)) is not the one that sealed the stored archive keys (\(other)); "
                        + "expected archive.master_key_file (or LETHE_MASTER_KEY_FILE) to be that master key, nothing changed"
                )
            }
            try connection.execute(
                "INSERT INTO lethe.archive_settings (account_id) VALUES ($1) ON CONFLICT DO NOTHING", [account])
            try connection.execute(
                """
                UPDATE lethe.archive_settings SET
                    sealed_key = coalesce($2, sealed_key), master_key_id = CASE WHEN $2 IS NULL THEN master_key_id ELSE $3 END,
                    schedule_hour = coalesce($4, schedule_hour), auto_delete = coalesce($5, auto_delete),
                    auto_delete_hour = coalesce($6, auto_delete_hour), require_download = coalesce($7, require_download),
                    updated_at = now()
                WHERE account_id = $1
                """,
                [
                    account, sealed, masterKey?.id, change.scheduleHour, change.autoDelete, change.autoDeleteHour,
                    change.requireDownload,
                ])
            if let enabled = change.enabled {
                let current = try settings(account: account, on: connection)!
                let sites = try self.sites(account: account, on: connection)
                if enabled && !current.hasKey {
                    throw ArchiveSettingsError(
                        "archiving for account \"\(account)\" needs an archive key first (--key-file FILE)")
                }
                if enabled && sites.isEmpty {
                    throw ArchiveSettingsError(
                        "archiving for account \"\(account)\" needs a backup site first: lethe account site add \(account) URL"
                    )
                }
                try connection.execute(
                    "UPDATE lethe.archive_settings SET enabled = $2, updated_at = now() WHERE account_id = $1",
                    [account, enabled])
            }
            // The next daily job follows the (maybe new) hour; switching off stops scheduling.
            try connection.execute(
                """
                UPDATE lethe.archive_settings
                SET next_run_at = CASE WHEN enabled THEN lethe.next_utc_hour(schedule_hour) END
                WHERE account_id = $1
                """, [account])
            return try settings(account: account, on: connection)!
        }
    }

    /// The account's settings, or nil when it never had any.
    public func settings(account: String, on connection: Connection) throws -> ArchiveSettings? {
        guard
            let row = try connection.query(
                """
                SELECT enabled, sealed_key IS NOT NULL, schedule_hour, auto_delete, auto_delete_hour, require_download,
                       next_run_at
                FROM lethe.archive_settings WHERE account_id = $1
                """, [account]
            ).first
        else { return nil }
        let (enabled, hasKey, hour, autoDelete, autoHour, download, next) = try row.decode(
            (Bool, Bool, Int, Bool, Int, Bool, Date?).self)
        return ArchiveSettings(
            accountID: account, enabled: enabled, hasKey: hasKey, scheduleHour: hour, autoDelete: autoDelete,
            autoDeleteHour: autoHour, requireDownload: download, nextRunAt: next)
    }

    /// The account's archive key, opened with the master key.
    public func archiveKey(account: String, on connection: Connection) throws -> String {
        guard
            let row = try connection.query(
                "SELECT sealed_key, master_key_id FROM lethe.archive_settings WHERE account_id = $1", [account]
            ).first, let sealed = try row.decode(Data?.self, at: 0)
        else { throw ArchiveSettingsError("account \"\(account)\" has no archive key") }
        return try requireMasterKey().open(
            sealed, context: Self.keyContext(account: account), sealedBy: try row.decode(String?.self, at: 1))
    }

    /// Adds a site (`url` already validated and without a password); `secret` is the
    /// password or the identity file's passphrase; `identity` and `knownHosts`, the contents
    /// of those files (read from `identityFile` and `knownHostsFile`), are stored sealed.
    /// Returns the site's id.
    public func addSite(
        account: String, url: String, identityFile: String?, secret: String?, knownHostsFile: String?,
        identity: String? = nil, knownHosts: String? = nil, on connection: Connection
    ) throws -> Int64 {
        let master = try (secret ?? identity ?? knownHosts).map { _ in try requireMasterKey() }
        return try connection.withTransaction { connection in
            guard try connection.query("SELECT 1 FROM lethe.accounts WHERE account_id = $1", [account]).count > 0 else {
                throw ArchiveSettingsError("no account \"\(account)\"; add it first: lethe account add \(account)")
            }
            if try connection.query(
                "SELECT 1 FROM lethe.backup_sites WHERE account_id = $1 AND url = $2 AND removed_at IS NULL",
                [account, url]
            ).count > 0 {
                throw ArchiveSettingsError("account \"\(account)\" already has the backup site \(url)")
            }
            let id = try connection.query(
                """
                INSERT INTO lethe.backup_sites (account_id, url, identity_file, known_hosts_file)
                VALUES ($1, $2, $3, $4) RETURNING site_id
                """, [account, url, identityFile, knownHostsFile])[0].decode(Int64.self, at: 0)
            if let master {
                try connection.execute(
                    """
                    UPDATE lethe.backup_sites SET sealed_secret = $2, sealed_identity = $3, sealed_known_hosts = $4
                    WHERE site_id = $1
                    """,
                    [
                        id, try secret.map { try master.seal($0, context: Self.siteContext(site: id)) },
                        try identity.map { try master.seal($0, context: Self.identityContext(site: id)) },
                        try knownHosts.map { try master.seal($0, context: Self.knownHostsContext(site: id)) },
                    ])
            }
            return id
        }
    }

    /// A site's stored identity and known_hosts lines, opened with the master key.
    public func siteKeys(site: Int64, on connection: Connection) throws -> StoredSiteKeys {
        guard
            let row = try connection.query(
                "SELECT sealed_identity, sealed_known_hosts FROM lethe.backup_sites WHERE site_id = $1", [site]
            ).first
        else { return StoredSiteKeys() }
        let (identity, knownHosts) = try row.decode((Data?, Data?).self)
        return StoredSiteKeys(
            identity: try identity.map {
                try requireMasterKey().open($0, context: Self.identityContext(site: site), sealedBy: nil)
            },
            knownHosts: try knownHosts.map {
                try requireMasterKey().open($0, context: Self.knownHostsContext(site: site), sealedBy: nil)
            })
    }

    /// Removes a site: files uploaded later no longer go there. The last site of an account
    /// with archiving on cannot go.
    public func removeSite(account: String, site: Int64, on connection: Connection) throws {
        try connection.withTransaction { connection in
            let removed = try connection.execute(
                "UPDATE lethe.backup_sites SET removed_at = now() WHERE site_id = $1 AND account_id = $2 AND removed_at IS NULL",
                [site, account])
            guard removed == 1 else { throw ArchiveSettingsError("account \"\(account)\" has no backup site \(site)") }
            let left = try sites(account: account, on: connection).count
            if left == 0, try settings(account: account, on: connection)?.enabled == true {
                throw ArchiveSettingsError(
                    "site \(site) is the last backup site of account \"\(account)\", which has archiving on; "
                        + "add another site or turn archiving off first")
            }
        }
    }

    /// The account's current sites, oldest first.
    public func sites(account: String, on connection: Connection) throws -> [BackupSiteRecord] {
        try connection.query(
            """
            SELECT site_id, url, identity_file, known_hosts_file, sealed_secret IS NOT NULL,
                   sealed_identity IS NOT NULL, sealed_known_hosts IS NOT NULL
            FROM lethe.backup_sites WHERE account_id = $1 AND removed_at IS NULL ORDER BY site_id
            """, [account]
        ).map { row in
            let (id, url, identity, knownHosts, hasSecret, storedIdentity, storedKnownHosts) = try row.decode(
                (Int64, String, String?, String?, Bool, Bool, Bool).self)
            return BackupSiteRecord(
                id: id, accountID: account, url: url, identityFile: identity, knownHostsFile: knownHosts,
                hasSecret: hasSecret, hasStoredIdentity: storedIdentity, hasStoredKnownHosts: storedKnownHosts)
        }
    }

    /// A site's password or passphrase, opened with the master key (nil when it has none).
    public func siteSecret(site: Int64, on connection: Connection) throws -> String? {
        guard
            let row = try connection.query("SELECT sealed_secret FROM lethe.backup_sites WHERE site_id = $1", [site])
                .first,
            let sealed = try row.decode(Data?.self, at: 0)
        else { return nil }
        return try requireMasterKey().open(sealed, context: Self.siteContext(site: site), sealedBy: nil)
    }
}

/// A refused archive setting; the message names the value and what is accepted, never a secret.
public struct ArchiveSettingsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
