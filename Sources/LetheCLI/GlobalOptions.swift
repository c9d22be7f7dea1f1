import ArgumentParser

/// Options every subcommand accepts.
package struct GlobalOptions: ParsableArguments {
    package init() {}

    @Option(
        name: .customLong("config"),
        help: ArgumentHelp("YAML configuration file (default: $LETHE_CONFIG, else none).", valueName: "path"))
    var configPath: String?

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "libpq connection string or URL (default: $LETHE_DATABASE_URL, then database.url, then PG* variables).",
            valueName: "conninfo"))
    var databaseURL: String?

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical (default: $LETHE_LOG_LEVEL, then log.level, then info).",
            valueName: "level"))
    var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "text or json: one JSON object per line (default: $LETHE_LOG_FORMAT, then log.format, then text).",
            valueName: "format"))
    var logFormat: String?
}
