#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A UTF-8 `LC_CTYPE` that a reader switches its thread to around libarchive's header reads.
///
/// libarchive converts every entry name to the charset of the current locale
/// (`nl_langinfo(CODESET)`). A Swift process runs in the "C" locale unless it calls
/// `setlocale`, and there a UTF-8 name fails ("Pathname cannot be converted from UTF-8 to
/// current locale", `ARCHIVE_WARN`) and is lost. `uselocale` changes only the calling thread,
/// so the process's locale stays as it is. Wraps `newlocale`, `uselocale` and `freelocale`.
final class UTF8Locale {
    private let locale: locale_t

    /// The first UTF-8 locale this system has, or nil (then names stay in the current locale).
    init?() {
        for name in ["C.UTF-8", "C.utf8", "en_US.UTF-8", "UTF-8"] {
            if let locale = newlocale(LC_CTYPE_MASK, name, nil) {
                self.locale = locale
                return
            }
        }
        return nil
    }

    deinit { freelocale(locale) }

    /// Runs `body` with the calling thread in this locale, then restores the thread's locale.
    func run<T>(_ body: () throws(ArchiveError) -> T) throws(ArchiveError) -> T {
        let previous = uselocale(locale)
        defer { if let previous { uselocale(previous) } }
        return try body()
    }
}

extension UTF8Locale? {
    /// Runs `body` in the UTF-8 locale when there is one, else in the thread's own.
    func run<T>(_ body: () throws(ArchiveError) -> T) throws(ArchiveError) -> T {
        guard let self else { return try body() }
        return try self.run(body)
    }
}
