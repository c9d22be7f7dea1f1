import Foundation
import Postgres

/// The definitions a schema holds, as PostgreSQL itself prints them: per table its columns
/// (type, NOT NULL, default), constraints, indexes, triggers, rules, row-security policies
/// and options; per view its query; per function `pg_get_functiondef` (body, volatility,
/// SECURITY DEFINER, SET search_path); enums and domains; sequences; and the grants on the
/// schema, its relations and functions, each object's owner written as `owner` (a schema
/// applied by another tool may belong to another role). Data is not read.
///
/// `lethe migrate --baseline N` compares the existing schema's fingerprint with that of a
/// schema it builds by applying migrations 1…N (see `Migrator.baseline`).
struct SchemaFingerprint: Sendable, Equatable {
    /// One aspect (`definition` or `grants`) of one object, e.g. `function lethe.f(x integer)`
    /// or `trigger t on lethe.tasks`.
    struct Key: Hashable, Sendable, Comparable, CustomStringConvertible {
        var kind: String
        var name: String
        var aspect: String

        var description: String {
            "\(aspect == "grants" ? "grants on " : "")\(kind) \(name)"
        }

        static func < (a: Key, b: Key) -> Bool { (a.kind, a.name, a.aspect) < (b.kind, b.name, b.aspect) }
    }

    var entries: [Key: String] = [:]

    /// Objects the schema may hold although no migration creates them: indexes an operator
    /// added for their workload, and the predicate functions `lethe policy sync` creates
    /// (`lethe.eligible_<type>_<hash>`, with their grants). Anything else extra is refused.
    static func allowsExtra(_ key: Key) -> Bool {
        key.kind == "index" || (key.kind == "function" && key.name.hasPrefix("lethe.eligible_"))
    }

    /// Reads the fingerprint of schema `schema`; an absent schema reads as empty. Names in
    /// definitions are printed as the session's search_path makes them visible: compare
    /// fingerprints read under the same search_path.
    static func read(_ connection: Connection, schema: String = "lethe") throws -> SchemaFingerprint {
        var fingerprint = SchemaFingerprint()
        for row in try connection.query(Self.query, [schema]) {
            let (kind, name, aspect, definition) = try row.decode((String, String, String, String).self)
            fingerprint.entries[Key(kind: kind, name: name, aspect: aspect)] = definition
        }
        return fingerprint
    }

    private static let query = """
        WITH s AS (SELECT oid, nspname, nspowner, nspacl FROM pg_namespace WHERE nspname = $1),
        rel AS (
            SELECT c.oid, s.nspname || '.' || c.relname AS relname, c.relkind, c.relowner, c.relacl, c.relpersistence,
                   c.reloptions, c.relrowsecurity, c.relforcerowsecurity,
                   CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                       WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                       WHEN 'c' THEN 'type' WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' ELSE 'relation' END AS kind
            FROM pg_class c JOIN s ON c.relnamespace = s.oid
        ),
        fn AS (
            SELECT p.oid, s.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
                   p.prokind, p.proowner, p.proacl,
                   CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END AS kind
            FROM pg_proc p JOIN s ON p.pronamespace = s.oid
        ),
        acl_source(kind, name, acl, owner, default_kind) AS (
            SELECT 'schema', nspname::text, nspacl, nspowner, 'n'::"char" FROM s
            UNION ALL
            SELECT kind, relname, relacl, relowner, (CASE relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char"
            FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
            UNION ALL
            SELECT kind, name, proacl, proowner, 'f'::"char" FROM fn
        ),
        entries(kind, name, aspect, definition) AS (
            SELECT a.kind, a.name, 'grants', (
                SELECT coalesce(string_agg(g.grant_text, ', ' ORDER BY g.grant_text), 'none') FROM (
                    SELECT format('%s %s%s (granted by %s)',
                        CASE WHEN e.grantee = 0 THEN 'PUBLIC' WHEN e.grantee = a.owner THEN 'owner'
                            ELSE pg_get_userbyid(e.grantee)::text END,
                        e.privilege_type, CASE WHEN e.is_grantable THEN ' with grant option' ELSE '' END,
                        CASE WHEN e.grantor = a.owner THEN 'owner' ELSE pg_get_userbyid(e.grantor)::text END)
                    FROM aclexplode(coalesce(a.acl, acldefault(a.default_kind, a.owner))) e
                ) AS g(grant_text))
            FROM acl_source a
            UNION ALL
            SELECT r.kind, r.relname, 'definition', concat_ws(E'\\n',
                concat_ws(', ', 'persistence ' || r.relpersistence::text,
                    'options ' || array_to_string(r.reloptions, ', '),
                    CASE WHEN r.relrowsecurity THEN 'row security' END,
                    CASE WHEN r.relforcerowsecurity THEN 'forced row security' END),
                CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(r.oid) END,
                CASE WHEN r.relkind = 'S' THEN (
                    SELECT format('%s start %s increment %s min %s max %s cache %s%s',
                        format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache,
                        CASE WHEN q.seqcycle THEN ' cycle' ELSE '' END)
                    FROM pg_sequence q WHERE q.seqrelid = r.oid) END,
                CASE WHEN r.relkind IN ('i', 'I') THEN (
                    SELECT pg_get_indexdef(r.oid) || CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END
                    FROM pg_index x WHERE x.indexrelid = r.oid) END)
            FROM rel r WHERE r.relkind <> 't'
            UNION ALL
            SELECT 'column', r.relname || '.' || a.attname, 'definition',
                concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                        THEN 'COLLATE ' || a.attcollation::regcollation::text END,
                    CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                    CASE WHEN a.attidentity <> '' THEN 'identity ' || a.attidentity::text END,
                    CASE WHEN a.attgenerated <> '' THEN 'generated' END,
                    'DEFAULT ' || pg_get_expr(d.adbin, d.adrelid))
            FROM rel r
            JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE r.relkind IN ('r', 'p', 'f', 'c')
            UNION ALL
            SELECT 'constraint', c.conname || ' on ' || r.relname, 'definition', pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN rel r ON r.oid = c.conrelid
            UNION ALL
            SELECT 'constraint', c.conname || ' on ' || s.nspname || '.' || t.typname, 'definition', pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid JOIN s ON s.oid = t.typnamespace
            UNION ALL
            SELECT 'trigger', g.tgname || ' on ' || r.relname, 'definition',
                pg_get_triggerdef(g.oid) || CASE g.tgenabled WHEN 'O' THEN '' ELSE ' (enabled ' || g.tgenabled::text || ')' END
            FROM pg_trigger g JOIN rel r ON r.oid = g.tgrelid WHERE NOT g.tgisinternal
            UNION ALL
            SELECT 'rule', w.rulename || ' on ' || r.relname, 'definition', pg_get_ruledef(w.oid)
            FROM pg_rewrite w JOIN rel r ON r.oid = w.ev_class WHERE w.rulename <> '_RETURN'
            UNION ALL
            SELECT 'policy', p.polname || ' on ' || r.relname, 'definition',
                concat_ws(' ', 'for ' || p.polcmd::text, CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                    'to ' || (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x)::text END, ', '
                                                ORDER BY 1) FROM unnest(p.polroles) x),
                    'USING ' || pg_get_expr(p.polqual, p.polrelid), 'CHECK ' || pg_get_expr(p.polwithcheck, p.polrelid))
            FROM pg_policy p JOIN rel r ON r.oid = p.polrelid
            UNION ALL
            SELECT f.kind, f.name, 'definition',
                CASE WHEN f.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(f.oid) ELSE 'aggregate' END
            FROM fn f
            UNION ALL
            SELECT 'type', s.nspname || '.' || t.typname, 'definition', CASE t.typtype
                WHEN 'e' THEN 'enum ' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                          FROM pg_enum e WHERE e.enumtypid = t.oid)
                WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod)
                    || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || t.typdefault, '')
                ELSE 'type ' || t.typtype::text END
            FROM pg_type t JOIN s ON s.oid = t.typnamespace WHERE t.typtype IN ('e', 'd', 'r', 'm')
        )
        SELECT kind::text, name::text, aspect::text, coalesce(definition, '') FROM entries
        """

    /// What differs from `expected`: each key missing here or defined differently, and each
    /// key here that `expected` lacks unless `allowsExtra` allows it; sorted.
    func differences(from expected: SchemaFingerprint) -> [Key] {
        let keys = Set(expected.entries.keys).union(entries.keys.filter { !Self.allowsExtra($0) })
        return keys.filter { entries[$0] != expected.entries[$0] }.sorted()
    }

    /// How `key` differs from `expected`, in one line: missing, unexpected, or the first
    /// line that differs in each.
    func describe(_ key: Key, expected: SchemaFingerprint) -> String {
        guard let found = entries[key] else { return "missing \(key)" }
        guard let wanted = expected.entries[key] else { return "unexpected \(key) (no migration creates it)" }
        if key.aspect == "grants" {
            let (have, want) = (Set(found.components(separatedBy: ", ")), Set(wanted.components(separatedBy: ", ")))
            let extra = have.subtracting(want).sorted().map { "extra \($0)" }
            let missing = want.subtracting(have).sorted().map { "missing \($0)" }
            return "\(key) differ: " + (extra + missing).joined(separator: ", ")
        }
        let foundLines = found.split(separator: "\n", omittingEmptySubsequences: false)
        let wantedLines = wanted.split(separator: "\n", omittingEmptySubsequences: false)
        let index =
            (0..<min(foundLines.count, wantedLines.count)).first { foundLines[$0] != wantedLines[$0] }
            ?? min(foundLines.count, wantedLines.count)
        func line(_ lines: [Substring]) -> String {
            guard index < lines.count else { return "(nothing)" }
            let text = lines[index].trimmingCharacters(in: .whitespaces)
            return "\"" + (text.count > 100 ? String(text.prefix(100)) + "…" : text) + "\""
        }
        return "\(key) differs: expected \(line(wantedLines)), found \(line(foundLines))"
    }
}
