import Foundation
import Postgres

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
