import ArgumentParser
import LetheBench
import LetheCLI

/// `lethe`: per-tenant data retention and garbage collection for PostgreSQL.
struct Lethe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lethe",
        abstract: "Per-tenant data retention and garbage collection for multi-tenant PostgreSQL applications.",
        discussion: """
            Lethe keeps its queue, policies and logs in schema `lethe` of your database. \
            The connection comes from --database-url, LETHE_DATABASE_URL, the config file's \
            database.url, or libpq's PG* environment variables, in that order.

            Exit status: 0 success, 1 runtime failure, 2 bad usage or configuration.
            """,
        version: LetheVersion.current,
        subcommands: LetheCommands.all + LetheBenchCommands.all
    )
}
