import ArchiveFormat
import Crypto
import Foundation
import Postgres
import Retention
import Store

/// Packs a planned job one part per REPEATABLE READ transaction (`packPart`,
/// ArchivePacker+Part.swift): streams the manifest's rows that still hash as the plan
/// recorded them (COPY, as JSON lines) and the blobs' contents to a writer thread that
/// compresses and encrypts them into the spool directory; rows that changed since the plan
/// lose their hash and stay out. Reading and compressing overlap; memory stays bounded by
/// the pipe.
package struct ArchivePacker: Sendable {
    let jobs: ArchiveJobs
    /// Of these the packer reads where parts go, where a part closes, and the deflate level.
    let settings: ArchiveOptions

    package init(jobs: ArchiveJobs, settings: ArchiveOptions) {
        self.jobs = jobs
        self.settings = settings
    }

    /// Chunks handed to the writer end on a record boundary at about this size.
    static let chunkSize = 1 << 20
    /// Blob contents are read in slices of this size.
    static let blobSlice = 4 << 20

    /// The job's spool directory (created empty, mode 0700).
    package func directory(for job: ArchiveJob) -> String {
        "\(settings.spoolDirectory)/\(job.id.uuidString.lowercased())"
    }

    static func isFinish(_ item: ArchivePipe.Item) -> Bool {
        if case .finish = item { return true }
        return false
    }

    /// The JSON line of `hash \u{02} JSON \n` if its MD5 is `hash` (as PostgreSQL's `md5`
    /// gave it when the plan recorded the row), else nil.
    static func recordHashed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard line.count > 34, line[32] == 0x02, line[line.count - 1] == 0x0A else { return nil }
        let json = UnsafeRawBufferPointer(rebasing: line[33...])
        let digest = Insecure.MD5.hash(data: UnsafeRawBufferPointer(rebasing: json.dropLast()))
        var position = 0
        for byte in digest {
            guard line[position] == hexDigits[Int(byte >> 4)], line[position + 1] == hexDigits[Int(byte & 0xF)]
            else { return nil }
            position += 2
        }
        return json
    }

    static let hexDigits = Array("0123456789abcdef".utf8)
}

/// The writer thread's result, handed back to the producer.
final class ResultBox: @unchecked Sendable {
    // Written once by the writer thread before it signals; read after the wait.
    private var result: Result<[PackedFile], any Error> = .failure(ArchiveJobError("the archive writer did not finish"))
    func set(_ value: Result<[PackedFile], any Error>) { result = value }
    func get() throws -> [PackedFile] { try result.get() }
}
