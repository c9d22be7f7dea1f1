import Foundation
import Postgres

/// One account as `lethe account list` shows it.
public struct AccountSummary: Sendable, Equatable {
    public var accountID: String
    public var state: String
    /// Nil when the account copies the defaults instead of following a tier.
    public var tier: String?
    public var retentionDisabled: Bool
    public var notice: String
    /// Holds not released and not past their end.
    public var activeHolds: Int
    /// Entity types whose retention runs for the account.
    public var typesRunning: Int
}

/// One entity type of an account as `lethe.retention_status` has it.
public struct AccountPolicyStatus: Sendable, Equatable, Codable {
    public var entityType: String
    /// The interval in force as PostgreSQL prints it; nil when none applies.
    public var effectiveInterval: String?
    /// Where the interval comes from (the account, its tier, the default).
    public var intervalSource: String
    public var cutoff: Date?
    public var runnable: Bool
    public var blockedReason: String?
    public var held: Bool
    public var holdReason: String?
    public var nextRunAt: Date?
}

/// A legal hold in force.
public struct HoldRecord: Sendable, Equatable {
    public var id: Int64
    public var accountID: String
    /// Nil when the hold covers every type of the account.
    public var entityType: String?
    public var reason: String
    public var placedBy: String
    public var placedAt: Date
    /// Nil when the hold lasts until it is released.
    public var until: Date?
}

/// What operators do to accounts: add them, set their state, switches and notice window,
/// place and release holds. Each change calls the SQL function an application would call.
public struct AccountAdministration: Sendable {
    public init() {}

    /// Adds `accounts` in one transaction, each in `tier` or, without one, with today's defaults.
    public func add(_ accounts: [String], tier: String?, notice: String, on connection: Connection) throws {
        try connection.withTransaction { connection in
            for account in accounts {
                try connection.execute("SELECT lethe.add_account($1, $2, $3)", [account, tier, notice])
            }
        }
    }

    /// Every account, by id.
    public func list(on connection: Connection) throws -> [AccountSummary] {
        try connection.query(
            """
            SELECT a.account_id, a.state, a.tier, a.retention_disabled, a.notice,
                   (SELECT count(*) FROM lethe.holds h WHERE h.account_id = a.account_id
                      AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now()))::int,
                   (SELECT count(*) FROM lethe.retention_status s WHERE s.account_id = a.account_id AND s.runnable)::int
            FROM lethe.accounts a ORDER BY a.account_id
            """
        ).map { row in
            let (id, state, tier, disabled, notice, holds, running) = try row.decode(
                (String, String, String?, Bool, String, Int, Int).self)
            return AccountSummary(
                accountID: id, state: state, tier: tier, retentionDisabled: disabled, notice: notice,
                activeHolds: holds, typesRunning: running)
        }
    }

    /// Fails with the database's refusal when there is no such account.
    public func requireAccount(_ account: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.require_account($1)", [account])
    }

    /// The account's entity types with the interval in force and whether retention runs, by type.
    public func policies(account: String, on connection: Connection) throws -> [AccountPolicyStatus] {
        try connection.query(
            """
            SELECT entity_type, effective_interval::text, interval_source, cutoff, runnable, blocked_reason,
                   held, hold_reason, next_run_at
            FROM lethe.retention_status WHERE account_id = $1 ORDER BY entity_type
            """, [account]
        ).map { row in
            let (type, interval, source, cutoff, runnable, blocked, held, holdReason, next) = try row.decode(
                (String, String?, String, Date?, Bool, String?, Bool, String?, Date?).self)
            return AccountPolicyStatus(
                entityType: type, effectiveInterval: interval, intervalSource: source, cutoff: cutoff,
                runnable: runnable, blockedReason: blocked, held: held, holdReason: holdReason, nextRunAt: next)
        }
    }

    /// Sets the account's state (active, suspended or deleted).
    public func setState(account: String, _ state: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.set_account_state($1, $2)", [account, state])
    }

    /// Operator switch: no retention for the account until an operator enables it again.
    public func disableRetention(account: String, reason: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.operator_set_retention_disabled($1, true, $2)", [account, reason])
    }

    /// Operator switch: retention runs for the account again.
    public func enableRetention(account: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.operator_set_retention_disabled($1, false)", [account])
    }

    /// Sets how long before a deletion the account is warned (week, day, same_day or never).
    public func setNotice(account: String, _ window: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.set_notice($1, $2)", [account, window])
    }

    /// Places a hold on the account (or one of its types) until `until` or its release;
    /// returns the hold's id.
    public func placeHold(
        account: String, entityType: String?, reason: String, until: Date?, on connection: Connection
    ) throws -> Int64 {
        try connection.query("SELECT lethe.place_hold($1, $2, $3, $4)", [account, entityType, reason, until])[0]
            .decode(Int64.self, at: 0)
    }

    /// Releases a hold by its id.
    public func releaseHold(_ id: Int64, on connection: Connection) throws {
        try connection.execute("SELECT lethe.release_hold($1)", [id])
    }

    /// The holds in force (of one account, or of all), by id.
    public func holds(account: String?, on connection: Connection) throws -> [HoldRecord] {
        try connection.query(
            """
            SELECT id, account_id, entity_type, reason, placed_by, placed_at, until
            FROM lethe.holds
            WHERE released_at IS NULL AND (until IS NULL OR until > now())
              AND ($1::text IS NULL OR account_id = $1)
            ORDER BY id
            """, [account]
        ).map { row in
            let (id, account, type, reason, by, since, until) = try row.decode(
                (Int64, String, String?, String, String, Date, Date?).self)
            return HoldRecord(
                id: id, accountID: account, entityType: type, reason: reason, placedBy: by, placedAt: since,
                until: until)
        }
    }
}
