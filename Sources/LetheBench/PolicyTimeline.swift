import Foundation
import Postgres

/// A change a second session made while Lethe ran (the chaos run's and the deletion-safety
/// suite's mutators).
package enum PolicyChange: Sendable {
    case hold(id: Int64, type: String?, until: Int64?)
    case release(id: Int64)
    /// The interval stored for the account's own policy, as PostgreSQL prints it.
    case policy(type: String, retention: String)
    case state(String)
    case retentionDisabled(Bool)
}

/// A committed change, with the commit time in microseconds since 1970.
package struct LoggedChange: Sendable {
    package var at: Int64
    package var account: String
    package var change: PolicyChange

    package init(at: Int64, account: String, change: PolicyChange) {
        (self.at, self.account, self.change) = (at, account, change)
    }
}

/// The retention settings of every account over time: as read before the run, then the
/// mutator's changes replayed at their commit times (microseconds since 1970). The chaos run
/// and the deletion-safety suite (Tests/SafetyTests) judge each deletion against it.
package struct PolicyTimeline {
    package struct Policy {
        package var retention: String?
        package var enabled = true
        package var operatorDisabled = false

        package init(retention: String? = nil, enabled: Bool = true, operatorDisabled: Bool = false) {
            (self.retention, self.enabled, self.operatorDisabled) = (retention, enabled, operatorDisabled)
        }
    }

    package struct Account {
        package var state: String
        package var retentionDisabled: Bool
        package var tier: String?
        package var policies: [String: Policy] = [:]
    }

    package struct Hold {
        package var id: Int64
        package var account: String
        package var type: String?
        package var placed: Int64
        package var released: Int64?
        package var until: Int64?
    }

    package var accounts: [String: Account] = [:]
    package var tierIntervals: [String: [String: String]] = [:]
    package var holds: [Hold] = []
    package var log: [LoggedChange] = []

    /// The settings as Lethe's tables hold them now (before the run).
    package static func load(_ connection: Connection) throws -> PolicyTimeline {
        var timeline = PolicyTimeline()
        for row in try connection.query("SELECT account_id, state, retention_disabled, tier FROM lethe.accounts") {
            let (id, state, disabled, tier) = try row.decode((String, String, Bool, String?).self)
            timeline.accounts[id] = Account(state: state, retentionDisabled: disabled, tier: tier)
        }
        for row in try connection.query(
            "SELECT account_id, entity_type, retention::text, enabled, operator_disabled FROM lethe.policies")
        {
            let (account, type, retention, enabled, operatorDisabled) = try row.decode(
                (String, String, String?, Bool, Bool).self)
            timeline.accounts[account]?.policies[type] = Policy(
                retention: retention, enabled: enabled, operatorDisabled: operatorDisabled)
        }
        for row in try connection.query("SELECT tier, entity_type, retention::text FROM lethe.tier_intervals") {
            let (tier, type, retention) = try row.decode((String, String, String).self)
            timeline.tierIntervals[tier, default: [:]][type] = retention
        }
        for row in try connection.query(
            """
            SELECT id, account_id, entity_type, (extract(epoch FROM until) * 1000000)::bigint FROM lethe.holds
            WHERE released_at IS NULL
            """)
        {
            let (id, account, type, until) = try row.decode((Int64, String, String?, Int64?).self)
            timeline.holds.append(Hold(id: id, account: account, type: type, placed: .min, until: until))
        }
        return timeline
    }

    /// Adds the mutator's log: holds placed and released, and the other changes by time.
    package mutating func replay(_ changes: [LoggedChange]) {
        log = changes.sorted { $0.at < $1.at }
        for entry in log {
            switch entry.change {
            case .hold(let id, let type, let until):
                holds.append(Hold(id: id, account: entry.account, type: type, placed: entry.at, until: until))
            case .release(let id):
                if let index = holds.firstIndex(where: { $0.id == id }) { holds[index].released = entry.at }
            default: break
            }
        }
    }

    /// The account's settings in force at `time`, nil for an account Lethe does not know.
    package func account(_ id: String, at time: Int64) -> Account? {
        guard var account = accounts[id] else { return nil }
        for entry in log where entry.account == id && entry.at <= time {
            switch entry.change {
            case .policy(let type, let retention): account.policies[type, default: Policy()].retention = retention
            case .state(let state): account.state = state
            case .retentionDisabled(let disabled): account.retentionDisabled = disabled
            case .hold, .release: break
            }
        }
        return account
    }

    /// The first hold on the account (or this type of it) in force at `time`.
    package func hold(on account: String, type: String?, at time: Int64) -> Hold? {
        holds.first { hold in
            hold.account == account && (hold.type == nil || hold.type == type) && hold.placed <= time
                && (hold.released.map { $0 > time } ?? true) && (hold.until.map { $0 > time } ?? true)
        }
    }

    /// Accounts the mutator changed during the run.
    package var changedAccounts: Set<String> { Set(log.map(\.account)) }
}
