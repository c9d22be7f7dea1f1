import Yams

/// A YAML error for people, without the file's text: Yams quotes the offending line (which
/// may hold a password), so only its problem, line and column are kept.
enum YAMLErrorText {
    /// `text` composed into a YAML node; a parse error is a usage error saying that `what`
    /// is not valid YAML, and where.
    static func compose(_ text: String, what: String) throws(UsageError) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch {
            throw UsageError("\(what) is not valid YAML: \(describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? YamlError else { return "it cannot be parsed" }
        func at(_ mark: Mark) -> String { "line \(mark.line), column \(mark.column)" }
        func context(_ context: YamlError.Context?) -> String {
            context.map { "\($0.text) (at \(at($0.mark))): " } ?? ""
        }
        switch error {
        case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _),
            .composer(let ctx, let problem, let mark, _):
            return "\(at(mark)): \(context(ctx))\(problem)"
        case .reader(let problem, let offset, _, let yaml):
            let line = offset.map { offset in yaml.utf8.prefix(offset).filter { $0 == UInt8(ascii: "\n") }.count + 1 }
            return "\(line.map { "line \($0)" } ?? "at an unknown line"): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let ctx):
            return "\(at(ctx.mark)): \(duplicates.count) duplicated key\(duplicates.count == 1 ? "" : "s") in a mapping"
        case .no, .memory, .writer, .emitter, .representer, .dataCouldNotBeDecoded:
            return "it cannot be parsed"
        @unknown default:
            return "it cannot be parsed"
        }
    }
}
