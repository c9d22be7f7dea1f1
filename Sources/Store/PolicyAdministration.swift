import Foundation
import Postgres

/// The interval a policy or tier got: the one asked for, or the type's minimum when the
/// asked one was below it.
public struct IntervalChange: Sendable, Equatable {
    /// The interval in force as PostgreSQL prints it.
    public var effective: String
    public var raisedToMinimum: Bool
}

/// Whether retention of one entity type runs for an account, as `lethe.retention_status` has it.
public struct PolicyRunStatus: Sendable, Equatable {
    public var entityType: String
    public var runnable: Bool
    public var blockedReason: String?
    public var held: Bool
}

/// A tier as `lethe policy tier list` shows it.
public struct TierSummary: Sendable, Equatable {
    public var name: String
    /// `type interval` pairs by type, comma-separated; `-` when the tier sets none.
    public var intervals: String
    /// Accounts assigned to the tier.
    public var accounts: Int
}

/// What operators do to retention policies: per-account intervals and switches, tiers,
/// forgetting a type. Each change calls the SQL function an application would call;
/// intervals go in as PostgreSQL interval text.
public struct PolicyAdministration: Sendable {
    public init() {}

    /// Sets the account's own interval for `entityType` (overriding its tier).
    public func setPolicy(
        account: String, entityType: String, interval: String, on connection: Connection
    ) throws -> IntervalChange {
        let (effective, raised) = try connection.query(
            "SELECT effective::text, raised_to_minimum FROM lethe.set_policy($1, $2, $3::interval)",
            [account, entityType, interval])[0].decode((String, Bool).self)
        return IntervalChange(effective: effective, raisedToMinimum: raised)
    }

    /// Operator switch: no retention of `entityType` for the account until an operator enables it again.
    public func disablePolicy(account: String, entityType: String, reason: String, on connection: Connection) throws {
        try connection.execute(
            "SELECT lethe.operator_set_policy_disabled($1, $2, true, $3)", [account, entityType, reason])
    }

    /// Operator switch: retention of `entityType` runs for the account again.
    public func enablePolicy(account: String, entityType: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.operator_set_policy_disabled($1, $2, false)", [account, entityType])
    }

    /// Whether each entity type's retention runs for the account (in no particular order).
    public func runStatus(account: String, on connection: Connection) throws -> [PolicyRunStatus] {
        try connection.query(
            "SELECT entity_type, runnable, blocked_reason, held FROM lethe.retention_status WHERE account_id = $1",
            [account]
        ).map { row in
            let (type, runnable, blocked, held) = try row.decode((String, Bool, String?, Bool).self)
            return PolicyRunStatus(entityType: type, runnable: runnable, blockedReason: blocked, held: held)
        }
    }

    /// Creates the tier, or changes its description.
    public func defineTier(_ name: String, description: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.define_tier($1, $2)", [name, description])
    }

    /// Sets the tier's interval for `entityType`.
    public func setTierInterval(
        _ tier: String, entityType: String, interval: String, on connection: Connection
    ) throws -> IntervalChange {
        let (effective, raised) = try connection.query(
            "SELECT effective::text, raised_to_minimum FROM lethe.set_tier_interval($1, $2, $3::interval)",
            [tier, entityType, interval])[0].decode((String, Bool).self)
        return IntervalChange(effective: effective, raisedToMinimum: raised)
    }

    /// Assigns the tier to `accounts`; returns how many accounts changed.
    public func assignTier(_ tier: String, to accounts: [String], on connection: Connection) throws -> Int {
        try connection.query("SELECT lethe.assign_tier($1, $2)", [tier, accounts])[0].decode(Int.self, at: 0)
    }

    /// Every tier with its intervals and its number of accounts, by name.
    public func tiers(on connection: Connection) throws -> [TierSummary] {
        try connection.query(
            """
            SELECT t.name, coalesce(string_agg(ti.entity_type || ' ' || ti.retention::text, ', '
                                               ORDER BY ti.entity_type), '-'),
                   (SELECT count(*) FROM lethe.accounts a WHERE a.tier = t.name)::int
            FROM lethe.tiers t LEFT JOIN lethe.tier_intervals ti ON ti.tier = t.name
            GROUP BY t.name ORDER BY t.name
            """
        ).map { row in
            let (name, intervals, accounts) = try row.decode((String, String, Int).self)
            return TierSummary(name: name, intervals: intervals, accounts: accounts)
        }
    }

    /// Forgets an entity type that left the configuration: its blob columns stop counting
    /// as references. Refused for a type still configured.
    public func forgetEntityType(_ name: String, on connection: Connection) throws {
        try connection.execute("SELECT lethe.forget_entity_type($1)", [name])
    }
}
