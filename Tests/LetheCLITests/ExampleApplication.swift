import Foundation
import Postgres
import TestSupport

/// The example application (examples/contact-centre) as the tests load it.
enum ExampleApplication {
    static let directory = Repository.root().appendingPathComponent("examples/contact-centre")

    /// Its schema and seed function, then `tenants` tenants of about `scale` conversations each.
    static func load(on connection: Connection, tenants: Int, scale: Int) throws {
        for file in ["schema.sql", "seed.sql"] {
            try connection.executeScript(
                try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8))
        }
        try connection.execute("SELECT app.seed_demo($1::int, $2::int)", [tenants, scale])
    }

    /// Its `entity_types:` and `blob_stores:` (examples/contact-centre/lethe.yml).
    static func registry() throws -> String {
        try String(contentsOf: directory.appendingPathComponent("lethe.yml"), encoding: .utf8)
    }

    /// A configuration for `url` with quick ticks, `settings` (more YAML) and the example's
    /// registry, written to a file the caller removes.
    static func configuration(url: String, settings: String = "") throws -> String {
        try writeConfig(
            """
            database: { url: "\(url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms }
            \(settings)
            \(try registry())
            """)
    }
}
