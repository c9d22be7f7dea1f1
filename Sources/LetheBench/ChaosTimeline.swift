import Foundation
import Postgres

/// The retention settings of every account over a chaos run: as read before the run, then
/// the mutator's changes replayed at their commit times (microseconds since 1970). Adapted
/// from the deletion-safety suite's `PolicyTimeline` (Tests/SafetyTests).
struct ChaosTimeline {
    struct Policy {
        var retention: String?
        var enabled = true
        var operatorDisabled = false
    }

    struct Account {
        var state: String
        var retentionDisabled: Bool
        var tier: String?
        var policies: [String: Policy] = [:]
    }

    struct Hold {
        var id: Int64
        var account: String
        var type: String?
        var placed: Int64
        var released: Int64?
        var until: Int64?
    }

    var accounts: [String: Account] = [:]
    var tierIntervals: [String: [String: String]] = [:]
    var holds: [Hold] = []
    var log: [ChaosLoggedChange] = []

    static func load(_ connection: Connection) throws -> ChaosTimeline {
        var timeline = ChaosTimeline()
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

    mutating func replay(_ changes: [ChaosLoggedChange]) {
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

    func account(_ id: String, at time: Int64) -> Account? {
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

    func hold(on account: String, type: String?, at time: Int64) -> Hold? {
        holds.first { hold in
            hold.account == account && (hold.type == nil || hold.type == type) && hold.placed <= time
                && (hold.released.map { $0 > time } ?? true) && (hold.until.map { $0 > time } ?? true)
        }
    }
}

extension Connection {
    /// The first column of the first row.
    func scalar<T: PostgresDecodable>(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], as type: T.Type
    )
        throws -> T
    {
        try query(sql, parameters)[0].decode(T.self, at: 0)
    }
}
