/// Booleans in configuration: `true`, `yes`, `on` and `false`, `no`, `off`, in any case.
public enum BooleanText {
    /// Parses `text`, or returns nil.
    public static func parse(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }
}
