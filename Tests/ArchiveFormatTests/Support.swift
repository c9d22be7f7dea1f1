import ArchiveFormat
import Foundation
import TestSupport

/// Collects every entry a scan hands over, its pieces joined across parts; each part's
/// manifest.json apart.
final class CollectingSink: ArchiveEntrySink {
    var contents: [String: [UInt8]] = [:]
    /// Entry names in the order first seen.
    var order: [String] = []
    /// The names `begin` was called with, in order (an entry cut at a part boundary twice).
    var begun: [String] = []
    var manifests: [[UInt8]] = []
    private var current = ""

    func begin(_ name: String) throws {
        begun.append(name)
        current = name
        if name == ArchiveLayout.manifest {
            manifests.append([])
        } else if contents[name] == nil {
            order.append(name)
            contents[name] = []
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if current == ArchiveLayout.manifest {
            manifests[manifests.count - 1] += bytes
        } else {
            contents[current]! += bytes
        }
    }

    func end() throws {}
}
