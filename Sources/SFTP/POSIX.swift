#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The C library's read, write and close under names that methods called read, write and
// close do not shadow, so that no call needs `Glibc.` (which would not build on Darwin).
// Package-wide: BackupSites' local-directory site uses them too.

/// Wraps `read`.
package func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }

/// Wraps `write`.
package func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }

/// Wraps `close`.
package func posixClose(_ fd: Int32) -> Int32 { close(fd) }
