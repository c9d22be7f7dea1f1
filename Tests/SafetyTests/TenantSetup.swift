import Postgres
import TestSupport

/// Random tenants through Lethe's SQL functions: default or tier policies, own intervals
/// (some below the minimum, some refused above the maximum), tenant and operator switches,
/// holds (some ending during the run), suspended accounts.
struct TenantSetup {
    var schema: SchemaModel
    var random: SeededGenerator
    static let intervals = ["1 day", "3 days", "10 days", "45 days", "4 mons", "1 year", "3 years"]

    init(schema: SchemaModel, seed: UInt64) {
        self.schema = schema
        self.random = SeededGenerator(seed: seed)
    }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }

    /// Adds `accounts` (the registered ones) with random settings; returns notes for the log.
    mutating func apply(accounts: [String], on connection: Connection) throws {
        try connection.execute("SELECT lethe.define_tier('gold')")
        for type in schema.types {
            try connection.execute(
                "SELECT lethe.set_tier_interval('gold', $1, $2::interval)",
                [type.name, Self.intervals[Int.random(in: 0..<6, using: &random)]])
        }
        for account in accounts {
            let tier: String? = chance(0.25) ? "gold" : nil
            try connection.execute("SELECT lethe.add_account($1, $2)", [account, tier])
            for type in schema.types {
                if chance(0.4) {
                    // Above the maximum is refused: that is part of the test, not an error.
                    _ = try? connection.execute(
                        "SELECT lethe.set_policy($1, $2, $3::interval)",
                        [account, type.name, Self.intervals.randomElement(using: &random)!])
                }
                if chance(0.08) {
                    try connection.execute("SELECT lethe.set_policy_enabled($1, $2, false)", [account, type.name])
                }
                if chance(0.05) {
                    try connection.execute(
                        "SELECT lethe.operator_set_policy_disabled($1, $2, true, 'safety')", [account, type.name])
                }
            }
            if chance(0.3) {
                let type: String? = chance(0.5) ? schema.types.randomElement(using: &random)!.name : nil
                let seconds: Int? = chance(0.3) ? Int.random(in: 1...4, using: &random) : nil
                try connection.execute(
                    "SELECT lethe.place_hold($1, $2, 'legal', now() + $3 * interval '1 second')",
                    [account, type, seconds])
            }
            if chance(0.08) { try connection.execute("SELECT lethe.set_account_state($1, 'suspended')", [account]) }
            if chance(0.08) {
                try connection.execute("SELECT lethe.operator_set_retention_disabled($1, true, 'safety')", [account])
            }
        }
    }
}
