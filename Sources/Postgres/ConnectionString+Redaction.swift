import Foundation

/// Masks secrets in connection strings, in every form libpq reads them: the `password`
/// (and `sslpassword`) keyword with any spacing around `=`, quoted or backslash-escaped;
/// a URL's user info (`postgresql://user:secret@host`); a URL query `?password=`; and a
/// `dbname` that is itself a connection string holding one. Keywords match in any case
/// (libpq's are lower-case, but a masker must not rely on the input being valid).
extension ConnectionString {
    /// `conninfo` with every secret replaced by `***`, safe to print.
    public static func redacted(_ conninfo: String) -> String {
        var scalars = Array(conninfo.unicodeScalars)
        for span in spans(scalars).reversed() {
            scalars.replaceSubrange(span.range, with: "***".unicodeScalars)
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars)
        return String(out)
    }

    /// The secrets in `conninfo`, as written and as decoded, for scrubbing messages that
    /// libpq or a server built from it.
    public static func secrets(in conninfo: String) -> [String] {
        var out: [String] = []
        for value in spans(Array(conninfo.unicodeScalars)).flatMap(\.values) where !value.isEmpty {
            if !out.contains(value) { out.append(value) }
        }
        return out
    }

    /// `message` with `conninfo`'s secrets, and `PGPASSWORD`'s value, replaced by `***`:
    /// for messages from libpq (a malformed percent-escape is quoted back, for example).
    public static func scrub(
        _ message: String, conninfo: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        var text = message
        if !conninfo.isEmpty { text = text.replacingOccurrences(of: conninfo, with: redacted(conninfo)) }
        var secrets = secrets(in: conninfo)
        if let password = environment["PGPASSWORD"], !password.isEmpty { secrets.append(password) }
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            text = text.replacingOccurrences(of: secret, with: "***")
        }
        return text
    }

    /// A value to mask: where it is in the text, and what it says (as written, decoded).
    struct SecretSpan {
        var range: Range<Int>
        var values: [String]
    }

    static func isSecret(_ keyword: String) -> Bool { keyword.lowercased().contains("password") }

    static func spans(_ s: [Unicode.Scalar]) -> [SecretSpan] {
        let lower = String(String.UnicodeScalarView(s.prefix(16))).lowercased()
        let parsed = lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") ? urlSpans(s) : keywordSpans(s)
        // Belt and braces for text the parse reads differently from libpq (an unterminated
        // quote before the password, say): the value after any other "password" goes too.
        var found = parsed
        for span in looseSpans(s) + embeddedURLSpans(s) where !found.contains(where: { $0.range.overlaps(span.range) })
        {
            found.append(span)
        }
        return found.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// The user info and `password` query values of every `scheme://` anywhere in the text:
    /// a URL after spaces or a newline (which libpq then reads as keywords and echoes), or
    /// pasted into another value.
    private static func embeddedURLSpans(_ s: [Unicode.Scalar]) -> [SecretSpan] {
        var spans: [SecretSpan] = []
        var i = 0
        while i + 3 <= s.count {
            if s[i] == ":", s[i + 1] == "/", s[i + 2] == "/" {
                let end =
                    s[(i + 3)...].firstIndex(where: { $0.properties.isWhitespace || $0 == "\"" || $0 == "'" })
                    ?? s.count
                var local: [SecretSpan] = []
                let slice = Array(s[..<end])
                _ = urlSpans(slice, authorityStart: i + 3, into: &local)
                spans += local
                i += 3
            } else {
                i += 1
            }
        }
        return spans
    }

    /// After every `password` (any case, inside a word too): optional spaces, an
    /// optional `=`, optional spaces, then the value up to whitespace, `&` or a quote's end.
    private static func looseSpans(_ s: [Unicode.Scalar]) -> [SecretSpan] {
        let needle = Array("password".unicodeScalars)
        var spans: [SecretSpan] = []
        var i = 0
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar { c.properties.lowercaseMapping.unicodeScalars.first ?? c }
        while i + needle.count <= s.count {
            guard (0..<needle.count).allSatisfy({ lower(s[i + $0]) == needle[$0] }) else {
                i += 1
                continue
            }
            var j = i + needle.count
            while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
            if j < s.count, s[j] == "=" { j += 1 }
            while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
            let start = j
            if j < s.count, s[j] == "'" {
                j += 1
                while j < s.count, s[j] != "'" { j += s[j] == "\\" ? 2 : 1 }
                j = min(j + 1, s.count)
            } else {
                while j < s.count, !s[j].properties.isWhitespace, s[j] != "&", s[j] != "'" {
                    j += s[j] == "\\" ? 2 : 1
                }
                j = min(j, s.count)
            }
            if j > start { spans.append(SecretSpan(range: start..<j, values: [text(s[start..<j])])) }
            i = max(j, i + 1)
        }
        return spans
    }

    private static func text(_ s: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(s)) }

    /// `postgresql://user:secret@host/db?password=secret&dbname=…`.
    private static func urlSpans(_ s: [Unicode.Scalar]) -> [SecretSpan] {
        var spans: [SecretSpan] = []
        let colon = s.firstIndex(of: ":") ?? 0
        return urlSpans(s, authorityStart: min(colon + 3, s.count), into: &spans)
    }

    private static func urlSpans(
        _ s: [Unicode.Scalar], authorityStart: Int, into spans: inout [SecretSpan]
    ) -> [SecretSpan] {
        let authorityEnd = s[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" }) ?? s.endIndex
        if let at = s[authorityStart..<authorityEnd].lastIndex(of: "@"),
            let colon = s[authorityStart..<at].firstIndex(of: ":")
        {
            let raw = text(s[(colon + 1)..<at])
            spans.append(SecretSpan(range: (colon + 1)..<at, values: [raw, raw.removingPercentEncoding ?? raw]))
        }
        guard let question = s[authorityEnd...].firstIndex(of: "?") else { return spans }
        var start = question + 1
        while start <= s.endIndex {
            let end = s[start...].firstIndex(of: "&") ?? s.endIndex
            if let equals = s[start..<end].firstIndex(of: "=") {
                let rawKey = text(s[start..<equals])
                let key = rawKey.removingPercentEncoding ?? rawKey
                let raw = text(s[(equals + 1)..<end])
                let value = raw.removingPercentEncoding ?? raw
                if isSecret(key) || (key.lowercased() == "dbname" && isSecret(value)) {
                    spans.append(SecretSpan(range: (equals + 1)..<end, values: [raw, value]))
                }
            }
            start = end + 1
        }
        return spans
    }

    /// `keyword = value …`, values bare or single-quoted, `\` escaping the next character.
    private static func keywordSpans(_ s: [Unicode.Scalar]) -> [SecretSpan] {
        var spans: [SecretSpan] = []
        var i = 0
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
        func skipSpaces() { while i < s.count, isSpace(s[i]) { i += 1 } }
        while i < s.count {
            skipSpaces()
            guard i < s.count else { break }
            let keyStart = i
            while i < s.count, s[i] != "=", !isSpace(s[i]) { i += 1 }
            let keyword = text(s[keyStart..<i])
            skipSpaces()
            var hasEquals = false
            if i < s.count, s[i] == "=" {
                hasEquals = true
                i += 1
                skipSpaces()
            }
            let valueStart = i
            var value = String.UnicodeScalarView()
            if i < s.count, s[i] == "'" {
                i += 1
                while i < s.count, s[i] != "'" {
                    if s[i] == "\\", i + 1 < s.count { i += 1 }
                    value.append(s[i])
                    i += 1
                }
                if i < s.count { i += 1 }
            } else if hasEquals || isSecret(keyword) {
                while i < s.count, !isSpace(s[i]) {
                    if s[i] == "\\", i + 1 < s.count { i += 1 }
                    value.append(s[i])
                    i += 1
                }
            }
            let decoded = String(value)
            if isSecret(keyword) || (keyword.lowercased() == "dbname" && isSecret(decoded)) {
                spans.append(SecretSpan(range: valueStart..<i, values: [text(s[valueStart..<i]), decoded]))
            }
        }
        return spans
    }
}
