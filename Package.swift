// swift-tools-version: 6.1
import PackageDescription

// Dependencies point one way (docs/architecture.md):
//   lethe → LetheBench → LetheCLI → LetheConfiguration → {Coordinator, Worker} → Store
//   Store → {Postgres, Retention, ArchiveFormat};  Worker → {BackupSites, ArchiveFormat}
//   BackupSites → {SFTP, Retention};  ArchiveFormat → Archive
//   (a module may also use any module below it directly.)
// Retention is the pure domain (no I/O). Only a wrapper module imports its CLib* module:
// Postgres → CLibPQ, SFTP → CLibSSH2, Archive → CLibArchive.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Lethe",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lethe", targets: ["lethe"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // C libraries, each wrapped once.
        .systemLibrary(
            name: "CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .systemLibrary(
            name: "CLibSSH2", pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"]), .brew(["libssh2"])]),
        .systemLibrary(
            name: "CLibArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"]), .brew(["libarchive"])]),

        .target(
            name: "Postgres",
            dependencies: ["CLibPQ"],
            swiftSettings: strict),
        .target(
            name: "SFTP",
            dependencies: ["CLibSSH2"],
            swiftSettings: strict),
        .target(
            name: "Archive",
            dependencies: ["CLibArchive"],
            swiftSettings: strict),
        // The archive file format: entry names, manifest.json, the part writer and reader,
        // extract and restore sinks. No database: a restore's SQL side is Store's.
        .target(
            name: "ArchiveFormat",
            dependencies: [
                "Archive",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        // Pure domain: no I/O, tested without a database.
        .target(
            name: "Retention",
            swiftSettings: strict),
        // migrations/*.sql compiled into the binary: the plugin lists the directory at every
        // build and MigrationEmbedder writes the bytes into EmbeddedMigrations.files.
        .executableTarget(name: "MigrationEmbedder"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["MigrationEmbedder"]),
        .target(name: "LetheMigrations", plugins: ["EmbedMigrations"]),
        // The metrics Lethe exports: names, types, labels and help in one catalog, emitted
        // through swift-metrics (a no-op until a command bootstraps the Prometheus exporter).
        .target(
            name: "LetheMetrics",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict),
        .target(
            name: "Store",
            dependencies: [
                "Postgres", "Retention", "ArchiveFormat", "LetheMigrations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "Coordinator",
            dependencies: [
                "Store", "Postgres", "Retention", "LetheMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .target(
            name: "Worker",
            dependencies: [
                "Store", "Postgres", "Retention", "Archive", "ArchiveFormat", "BackupSites", "LetheMetrics",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The configuration file, and the registry in force: parsing and checking the YAML,
        // the settings it gives the worker, the coordinator and the archive, and the registry sync.
        .target(
            name: "LetheConfiguration",
            dependencies: [
                "Store", "Postgres", "Retention", "Coordinator", "Worker",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        .target(
            name: "LetheCLI",
            dependencies: [
                "LetheConfiguration", "Store", "Postgres", "Archive", "ArchiveFormat", "BackupSites", "Retention",
                "Coordinator", "Worker",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                "LetheMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ],
            swiftSettings: strict),
        // The benchmarks and the demo: commands of their own, built on LetheCLI's context.
        .target(
            name: "LetheBench",
            dependencies: [
                "LetheCLI", "LetheConfiguration", "Store", "Postgres", "Retention", "Worker", "Archive",
                "ArchiveFormat", "BackupSites",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "lethe",
            dependencies: [
                "LetheCLI", "LetheBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // Tests: helpers shared by the integration suites.
        .target(
            name: "TestSupport",
            dependencies: ["Postgres", "Store"],
            path: "Tests/TestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "PostgresTests",
            dependencies: ["Postgres", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "RetentionTests",
            dependencies: ["Retention"],
            swiftSettings: strict),
        .testTarget(
            name: "QueueTests",
            dependencies: ["Store", "Postgres", "Retention", "Coordinator", "Worker", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "StoreTests",
            dependencies: ["Store", "Postgres", "Retention", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "RetentionStoreTests",
            dependencies: ["Store", "Postgres", "Retention", "ArchiveFormat", "Worker", "Coordinator", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "LetheCLITests",
            dependencies: [
                "LetheCLI", "LetheConfiguration", "SFTP", "Archive", "ArchiveFormat", "Postgres", "Retention",
                "TestSupport", "LetheMetrics", "Worker", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // The randomised adversarial safety suite (issue 14): random schemas, tenants and
        // concurrent changes against the built `lethe`, every deletion checked row by row.
        .testTarget(
            name: "SafetyTests",
            dependencies: ["Postgres", "TestSupport", "LetheBench"],
            swiftSettings: strict),

        // Backup sites (SFTP and local directories) and their tests against the real sshd.
        .target(
            name: "BackupSites",
            dependencies: ["SFTP", "Retention"],
            swiftSettings: strict),
        .testTarget(
            name: "SFTPTests",
            dependencies: ["SFTP", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "BackupSiteTests",
            dependencies: ["BackupSites", "SFTP", "Retention", "TestSupport"],
            swiftSettings: strict),

        // The libarchive wrapper's tests: AES-256 ZIP round trips and bsdtar/7z interop, no database.
        .testTarget(
            name: "ArchiveTests",
            dependencies: ["Archive", "TestSupport"],
            swiftSettings: strict),
        // The archive format's tests: writer and reader round trips, names, splitting; no database.
        .testTarget(
            name: "ArchiveFormatTests",
            dependencies: ["ArchiveFormat", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
    ]
)
