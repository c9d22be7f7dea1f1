import Foundation

/// The hostile inputs (issue 19): each is refused with exit 2 (bad input) or 1 (a runtime
/// failure), a message naming the value and what is accepted, no change to the database and
/// no secret in the output. `HostileInputTests` runs them.
extension HostileCase {
    static let all: [HostileCase] = configuration + identifiers + predicates + commandLine + accounts + keys + archives

    /// The case with a known defect (reported, not fixed).
    func known(_ issue: String) -> HostileCase {
        var copy = self
        copy.knownIssue = issue
        return copy
    }

    static let worker = "worker: { poll_interval: 200ms }"
    static let coordinator = "coordinator: { tick_interval: 200ms }"

    /// Unknown keys, wrong types, durations and sizes, numbers that overflow.
    static let configuration: [HostileCase] = [
        config(
            "unknown top-level key", replacing: coordinator, with: coordinator + "\ndatabse_pool: 3",
            mentions: ["databse_pool"]),
        setting(
            "unknown worker key", worker, "worker: { poll_interval: 200ms, concurency: 4 }",
            mentions: ["concurency"]),
        auditLog("unknown entity-type key", adding: "    retain: forever", mentions: ["retain"]),
        setting(
            "concurrency not a number", worker, "worker: { poll_interval: 200ms, concurrency: eight }",
            mentions: ["worker.concurrency", "eight"]),
        setting(
            "listen not a boolean", worker, "worker: { poll_interval: 200ms, listen: maybe }",
            mentions: ["worker.listen", "maybe"]),
        config(
            "entity_types a list", replacing: "entity_types:\n", with: "entity_types: [conversations]\nx_unused:\n",
            mentions: ["entity_types"]),
        config(
            "interval a list", replacing: "interval: { default: 1y, min: 30d, max: 7y }", with: "interval: [1y]",
            mentions: ["interval"]),
        setting(
            "duration without unit", worker, "worker: { poll_interval: 200ms, lease: 15 }",
            mentions: ["worker.lease", "15"]),
        setting(
            "duration with unknown unit", coordinator, "coordinator: { tick_interval: 2 fortnights }",
            mentions: ["coordinator.tick_interval", "2 fortnights"]),
        setting(
            "negative duration", coordinator, "queue: { retry_base: -1s }\n" + coordinator,
            mentions: ["queue.retry_base", "-1s"]),
        setting(
            "duration overflowing its digits", coordinator,
            "coordinator: { tick_interval: 200ms, keep_dead: 99999999999999999999d }",
            mentions: ["coordinator.keep_dead", "99999999999999999999d"]),
        setting(
            "duration overflowing by its unit", "  check_interval: 1h ", "  check_interval: 9223372036854775807w ",
            command: ["policy", "sync"],
            mentions: ["retention.check_interval", "9223372036854775807w"]),
        config(
            "interval max overflowing", replacing: "interval: { default: 1y, min: 30d, max: 7y }",
            with: "interval: { default: 1y, min: 30d, max: 99999999999999y }", mentions: ["99999999999999y"]),
        setting(
            "size with unknown unit", "archive:\n", "archive:\n  split_size: 2XB\n",
            mentions: ["archive.split_size", "2XB"]),
        setting(
            "size overflowing its digits", "archive:\n", "archive:\n  split_size: 99999999999999999999GB\n",
            mentions: ["archive.split_size", "99999999999999999999GB"]),
        setting(
            "size overflowing by its unit", "archive:\n", "archive:\n  split_size: 9223372036854775807GiB\n",
            mentions: ["archive.split_size", "9223372036854775807GiB"]),
        setting(
            "negative size", "archive:\n", "archive:\n  split_size: -5MB\n",
            mentions: ["archive.split_size", "-5MB"]),
        setting(
            "compression level out of range", "archive:\n", "archive:\n  compression_level: 10\n",
            mentions: ["archive.compression_level", "10"]),
        setting(
            "concurrency zero", worker, "worker: { poll_interval: 200ms, concurrency: 0 }",
            mentions: ["worker.concurrency", "0"]),
        setting(
            "concurrency overflowing", worker,
            "worker: { poll_interval: 200ms, concurrency: 99999999999999999999 }",
            mentions: ["worker.concurrency", "99999999999999999999"]),
        setting(
            "claim batch huge", worker, "worker: { poll_interval: 200ms, claim_batch: 1000000000 }",
            mentions: ["worker.claim_batch", "1000000000"]),
        config(
            "batch size zero", replacing: "    batch_size: 5000", with: "    batch_size: 0",
            mentions: ["batch_size", "0"]),
        config(
            "batch size huge", replacing: "    batch_size: 5000", with: "    batch_size: 100000000000",
            mentions: ["batch_size", "100000000000"]),
        config(
            "batch size overflowing", replacing: "    batch_size: 5000",
            with: "    batch_size: 99999999999999999999999", mentions: ["batch_size", "99999999999999999999999"]),
        config(
            "blob cap negative", replacing: "cap_per_run: 100000", with: "cap_per_run: -1",
            mentions: ["cap_per_run", "-1"]),
        setting(
            "spool directory relative", "spool_directory: /", "spool_directory: spool-relative/",
            mentions: ["archive.spool_directory", "spool-relative"]
        ),
        HostileCase(name: "configuration file missing", status: 2, mentions: ["/nonexistent/lethe.yml"]) { _ in
            .init(arguments: ["status", "--config", "/nonexistent/lethe.yml"], withConfig: false)
        },
        HostileCase(name: "configuration not a mapping", status: 2, mentions: ["mapping"]) { _ in
            .init(arguments: ["status"], config: "- database\n- url\n")
        },
    ]

    /// Tables and columns that do not exist, and names with quotes, semicolons, NUL and look-alikes.
    static let identifiers: [HostileCase] = [
        config(
            "missing table", replacing: "table: app.audit_log", with: "table: app.audit_logs",
            mentions: ["app.audit_logs"]),
        config(
            "missing schema", replacing: "table: app.audit_log", with: "table: nosuch.audit_log",
            mentions: ["nosuch.audit_log"]),
        config(
            "missing clock column", replacing: "clock: occurred_at", with: "clock: happened_at",
            mentions: ["happened_at"]),
        config(
            "missing account column", replacing: "    table: app.audit_log\n    account: account_id",
            with: "    table: app.audit_log\n    account: tenant_id", mentions: ["tenant_id"]),
        config(
            "table with a double quote", replacing: "table: app.audit_log", with: "table: 'app.audit\"log'",
            mentions: ["app.audit\"log"]),
        config(
            "table with a semicolon", replacing: "table: app.audit_log",
            with: "table: 'app.audit_log; DROP TABLE app.persons'", mentions: ["app.audit_log; DROP TABLE app.persons"]),
        config(
            "table with NUL", replacing: "table: app.audit_log", with: "table: \"app.audit\\0log\"",
            mentions: ["app.audit"]),
        config(
            "table with a Cyrillic look-alike", replacing: "table: app.audit_log", with: "table: app.\u{430}udit_log",
            mentions: ["app.\u{430}udit_log"]),
        config(
            "column with a Cyrillic look-alike", replacing: "clock: occurred_at", with: "clock: \u{43E}ccurred_at",
            mentions: ["\u{43E}ccurred_at"]),
        config(
            "column with a zero-width space", replacing: "clock: occurred_at",
            with: "clock: \"occurred_at\\u200B\"", mentions: ["occurred_at"]),
        config(
            "entity type name with a Cyrillic look-alike", replacing: "  audit_log:\n    table: app.audit_log",
            with: "  \u{430}udit_log:\n    table: app.audit_log", mentions: ["\u{430}udit_log"]),
        config(
            "entity type name with a quote", replacing: "  audit_log:\n    table: app.audit_log",
            with: "  \"audit'log\":\n    table: app.audit_log", mentions: ["audit'log"]),
    ]

    /// Predicates that try to escape their parentheses or have side effects.
    static let predicates: [HostileCase] = [
        auditLog("predicate closing its parenthesis", adding: "    where: ') OR (true'", mentions: [") OR (true"]),
        auditLog(
            "predicate with a second statement", adding: "    where: 'true; DELETE FROM app.persons'",
            mentions: ["true; DELETE FROM app.persons"]),
        auditLog("predicate with a line comment", adding: "    where: 'r.id > 0 --'", mentions: ["--"]),
        auditLog("predicate with an open block comment", adding: "    where: 'r.id > 0 /*'", mentions: ["/*"]),
        auditLog(
            "predicate with dollar quotes", adding: "    where: '$$ ) OR (true $$ IS NOT NULL'",
            mentions: ["$$"]),
        auditLog("predicate with an open string", adding: "    where: \"r.action = 'x\"", mentions: ["r.action = 'x"]),
        auditLog(
            "predicate calling nextval", adding: "    where: \"nextval('app.audit_log_id_seq') > 0\"",
            mentions: ["nextval"]),
        auditLog(
            "predicate calling a writing function", adding: "    where: \"app.reserve('app.audit_log', 1) > 0\"",
            mentions: ["app.reserve"]),
        auditLog(
            "predicate taking an advisory lock", adding: "    where: 'pg_advisory_lock(42) IS NOT NULL'",
            mentions: ["pg_advisory_lock"]),
        auditLog(
            "predicate with a data-modifying CTE",
            adding: "    where: 'EXISTS (WITH d AS (DELETE FROM app.persons RETURNING 1) SELECT 1 FROM d)'",
            mentions: ["DELETE"]),
    ]

    /// Command-line values out of range or of the wrong kind.
    static let commandLine: [HostileCase] = [
        cli(
            "worker concurrency zero", ["worker", "--until-idle", "--concurrency", "0"],
            mentions: ["--concurrency", "0"]),
        cli("worker concurrency negative", ["worker", "--until-idle", "--concurrency=-3"], mentions: ["-3"]),
        cli(
            "run concurrency overflowing", ["run", "--until-idle", "--concurrency", "99999999999999999999"],
            mentions: ["99999999999999999999"]),
        cli("enqueue count zero", ["task", "enqueue", "noop", "--count", "0"], mentions: ["--count", "0"]),
        cli(
            "enqueue count huge", ["task", "enqueue", "noop", "--count", "100000000000"],
            mentions: ["--count", "100000000000"]),
        cli(
            "enqueue payload not JSON", ["task", "enqueue", "noop", "--payload", "{not json"],
            mentions: ["--payload", "{not json"]),
        cli("task state unknown", ["task", "list", "--state", "sleeping"], mentions: ["sleeping"]),
        cli("task id not a UUID", ["task", "retry", "not-a-uuid"], mentions: ["not-a-uuid"]),
        cli("archive list limit negative", ["archive", "list", "--limit=-1"], mentions: ["-1"]),
        cli("status max-behind not a duration", ["status", "--check", "--max-behind", "soon"], mentions: ["soon"]),
        cli("status watch interval zero", ["status", "--watch", "--interval", "0s"], mentions: ["0s"]),
        cli("log level unknown", ["status", "--log-level", "loud"], mentions: ["loud"]),
        cli("log format unknown", ["status", "--log-format", "xml"], mentions: ["xml"]),
        cli(
            "metrics address out of range", ["run", "--until-idle", "--metrics-address", "300.1.1.1:99999"],
            mentions: ["300.1.1.1:99999"]),
        cli("schedule hour 24", ["account", "archive", "1", "--schedule-hour", "24"], mentions: ["24"]),
        cli("notice window unknown", ["account", "notice", "1", "fortnight"], mentions: ["fortnight"]),
        cli("account state unknown", ["account", "set-state", "1", "gone"], mentions: ["gone"]),
        cli(
            "hold until not a time", ["account", "hold", "1", "--reason", "r", "--until", "next tuesday"],
            mentions: ["next tuesday"]),
        cli(
            "interval above the type's max",
            [
                "policy", "set", "--account", "1", "--type", "audit_log", "--interval",
                "100y",
            ], mentions: ["100 years", "7 years"]),
        cli(
            "interval unparsable", ["policy", "set", "--account", "1", "--type", "audit_log", "--interval", "5x"],
            mentions: ["5x"]),
        cli(
            "entity type with SQL",
            [
                "policy", "set", "--account", "1", "--type", "audit_log'; DELETE FROM app.persons; --",
                "--interval", "30d",
            ], mentions: ["audit_log'; DELETE FROM app.persons; --"]),
        cli(
            "account id with SQL", ["account", "show", "1; DELETE FROM app.persons"],
            mentions: ["1; DELETE FROM app.persons"]),
        cli(
            "tier name with a quote", ["policy", "tier", "define", "Gold'; DROP TABLE lethe.accounts; --"],
            mentions: ["Gold'; DROP TABLE lethe.accounts; --"]),
        HostileCase(name: "database unreachable", status: 1, mentions: ["127.0.0.1", "1"]) { _ in
            .init(
                arguments: [
                    "status", "--database-url", "postgresql://lethe:S3cret-Passw0rd@127.0.0.1:1/app?connect_timeout=3",
                ], withConfig: false)
        },
        HostileCase(name: "database host unknown", status: 1, mentions: ["nosuch.invalid"]) { _ in
            .init(
                arguments: [
                    "status", "--database-url", "host=nosuch.invalid password=S3cret-Passw0rd connect_timeout=3",
                ],
                withConfig: false)
        },
    ]

    /// Account ids that do not fit the account column.
    static let accounts: [HostileCase] = [
        cli("account id not numeric for bigint", ["account", "add", "abc"], mentions: ["abc", "bigint"]),
        cli(
            "account id beyond bigint", ["account", "add", "99999999999999999999"],
            mentions: ["99999999999999999999", "bigint"]),
        cli(
            "account id in Arabic-Indic digits", ["account", "add", "\u{661}\u{662}"],
            mentions: ["\u{661}\u{662}", "bigint"]),
        cli("account id with a space", ["account", "add", " 1"], mentions: [" 1"]),
        cli("account id not canonical", ["account", "add", "01"], mentions: ["01", "1"]),
        cli(
            "hold for an account beyond bigint", ["account", "hold", "99999999999999999999", "--reason", "r"],
            mentions: ["99999999999999999999"]),
        cli(
            "account id too long for varchar(8)", ["account", "add", "123456789"],
            mentions: ["123456789", "8"], target: .varcharAccounts),
        cli(
            "account id beyond integer", ["account", "add", "2147483648"], mentions: ["2147483648", "integer"],
            target: .integerAccounts),
        cli(
            "account id below integer", ["account", "add", "--", "-2147483649"], mentions: ["-2147483649", "integer"],
            target: .integerAccounts),
    ]

    /// Weak and unreadable archive keys, bad and wrong master keys.
    static let keys: [HostileCase] = [
        keyFile("weak archive key", "password", mentions: ["weak archive key", "8 characters"]),
        keyFile("short archive key", "Ab1", mentions: ["weak archive key", "3 characters"]),
        keyFile("empty archive key file", "", mentions: ["empty"]),
        world("archive key file missing", mentions: ["/nonexistent/archive.key"]) { _ in
            ["account", "archive", "1", "--key-file", "/nonexistent/archive.key"]
        },
        world("archive key file a directory", mentions: ["keys"]) { world in
            ["account", "archive", "1", "--key-file", world.path("keys")]
        },
        masterKey("master key file missing", path: "/nonexistent/master.key", mentions: ["/nonexistent/master.key"]),
        masterKey("master key too short", contents: "abc123", mentions: ["64 hex digits"]),
        masterKey("master key not hex", contents: String(repeating: "zz", count: 32), mentions: ["64 hex digits"]),
        HostileCase(name: "wrong master key opening the stored archive key", status: 2, mentions: ["master key"]) {
            world in
            .init(
                arguments: ["archive", "verify", world.archive],
                config: world.configText.replacingOccurrences(of: "keys/master.key", with: "keys/wrong-master.key"))
        },
        HostileCase(name: "wrong master key sealing a new archive key", status: 2, mentions: ["master key"]) { world in
            .init(
                arguments: ["account", "archive", "1", "--key-file", world.path("keys/wrong-archive.key")],
                config: world.configText.replacingOccurrences(of: "keys/master.key", with: "keys/wrong-master.key"))
        },
    ]

    /// Damaged, wrongly keyed, forged and climbing archives for verify, extract and restore.
    static let archives: [HostileCase] = {
        var cases: [HostileCase] = []
        let kinds: [(String, String, Int32, [String])] = [
            ("truncated", "truncated", 1, ["damaged"]),
            ("tampered", "tampered", 1, ["damaged"]),
            ("forged without encryption", "forged", 1, ["not encrypted"]),
            ("with ../ entry names", "climbing", 1, ["../escaped.txt"]),
        ]
        for (label, kind, status, mentions) in kinds {
            for command in ["verify", "extract", "restore"] {
                cases.append(
                    world("\(command) an archive \(label)", status: status, mentions: mentions) { world in
                        let file = world.path("files/\(kind)/\(world.archiveName)")
                        return ["archive", command, file]
                            + (command == "extract" ? ["--to", world.path("out/\(kind)-\(UUID().uuidString)")] : [])
                    })
            }
        }
        for command in ["verify", "extract", "restore"] {
            cases.append(
                world("\(command) with the wrong key", status: 1, mentions: ["wrong-archive.key", "does not open"]) {
                    world in
                    ["archive", command, world.archive, "--key-file", world.path("keys/wrong-archive.key")]
                        + (command == "extract" ? ["--to", world.path("out/wrong-\(UUID().uuidString)")] : [])
                })
        }
        cases += [
            world("verify an empty file", status: 1, mentions: ["damaged"]) { world in
                ["archive", "verify", world.path("files/empty/\(world.archiveName)")]
            },
            world("verify a file that is no ZIP", status: 1, mentions: ["damaged"]) { world in
                ["archive", "verify", world.path("files/garbage/\(world.archiveName)")]
            },
            cli(
                "verify a missing file", ["archive", "verify", "/nonexistent/backup_1_x_1.zip"],
                mentions: ["/nonexistent/backup_1_x_1.zip"]),
            world("extract into a file", mentions: ["--to", "is not a directory"]) { world in
                ["archive", "extract", world.archive, "--to", world.archive]
            },
        ]
        return cases
    }()

    static func keyFile(_ name: String, _ key: String, mentions: [String]) -> HostileCase {
        HostileCase(name: name, status: 2, mentions: mentions) { world in
            let path = world.path("keys/\(UUID().uuidString).key")
            try world.write(key.isEmpty ? "" : key + "\n", to: "keys/" + URL(fileURLWithPath: path).lastPathComponent)
            return .init(arguments: ["account", "archive", "1", "--key-file", path])
        }
    }

    static func masterKey(
        _ name: String, path: String? = nil, contents: String = "", mentions: [String]
    )
        -> HostileCase
    {
        HostileCase(name: name, status: 2, mentions: mentions) { world in
            var file = path ?? ""
            if path == nil {
                let relative = "keys/master-\(UUID().uuidString).key"
                try world.write(contents + "\n", to: relative)
                file = world.path(relative)
            }
            return .init(
                arguments: ["account", "archive", "1", "--key-file", world.path("keys/archive.key")],
                config: world.configText.replacingOccurrences(of: world.path("keys/master.key"), with: file))
        }
    }
}
