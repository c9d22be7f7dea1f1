import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// The migrations embedded in the binary held against the files, and the server and schema
/// versions services accept.
@Suite("embedded migrations and compatibility")
struct EmbeddedMigrationTests {
    static func diskFiles() throws -> [MigrationFile] {
        try MigrationFile.load(directory: Repository.root().appendingPathComponent("migrations"))
    }

    @Test func embeddedSetIsTheDirectoryByteForByte() throws {
        let embedded = try MigrationFile.embedded()
        let disk = try Self.diskFiles()
        #expect(embedded.map(\.fileName) == disk.map(\.fileName))
        #expect(embedded.map(\.checksum) == disk.map(\.checksum))
        #expect(embedded == disk)
        #expect(embedded.first?.version == 1)
    }

    @Test(
        "servers before 15 are refused, naming the version found",
        arguments: [
            (90624, "9.6.24"), (130015, "13.15"), (140011, "14.11"), (149999, "14.9999"), (0, "unknown"),
        ])
    func oldServersAreRefused(_ version: Int, _ shown: String) throws {
        let refusal = try #require(ServerRequirement.refusal(serverVersion: version))
        #expect(refusal.description.contains("PostgreSQL \(shown);"))
        #expect(refusal.description.contains("needs PostgreSQL 15 or later"))
    }

    @Test("servers from 15 on are accepted", arguments: [150000, 150018, 160004, 170002, 180000])
    func supportedServers(_ version: Int) {
        #expect(ServerRequirement.refusal(serverVersion: version) == nil)
    }

    @Test func schemaCompatibilityDecision() throws {
        let files = try MigrationFile.embedded()
        let all = Set(files.map(\.version))
        let highest = try #require(files.last?.version)
        #expect(SchemaCompatibility.problem(applied: all, known: files) == nil)
        let unmigrated = try #require(SchemaCompatibility.problem(applied: [], known: files))
        #expect(unmigrated.kind == .unmigrated)
        #expect(unmigrated.description.contains("needs version \(highest)"))
        #expect(unmigrated.description.contains("lethe migrate"))
        let behind = try #require(SchemaCompatibility.problem(applied: all.subtracting([highest]), known: files))
        #expect(behind.kind == .behind)
        #expect(behind.description.contains("at version \(highest - 1)"))
        #expect(behind.description.contains(files.last?.fileName ?? "-"))
        let newer = try #require(SchemaCompatibility.problem(applied: all.union([9999]), known: files))
        #expect(newer.kind == .newer)
        #expect(newer.description.contains("at version 9999"))
        #expect(newer.description.contains("up to \(highest)"))
        #expect(newer.description.contains("upgrade lethe"))
    }
}
