import Archive
import SFTP
import Testing

/// The system-library modules link and expose what the archive pipeline needs.
@Suite struct CLibraryTests {
    @Test func libssh2Links() {
        #expect(LibSSH2.version.hasPrefix("1."))
    }

    @Test func libarchiveWritesAES256Zip() {
        #expect(LibArchive.versionDetails.hasPrefix("libarchive 3."))
        #expect(LibArchive.supportsAES256Zip)
    }
}
