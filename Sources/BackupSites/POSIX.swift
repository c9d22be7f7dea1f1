#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The C library's read, write and close under names that methods called read, write and
// close do not shadow, so that no call needs `Glibc.` (which would not build on Darwin).

/// Wraps `read`.
func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }

/// Wraps `write`.
func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }

/// Wraps `close`.
func posixClose(_ fd: Int32) -> Int32 { close(fd) }

/// Wraps `link`.
func posixLink(_ from: String, _ to: String) -> Int32 { link(from, to) }
