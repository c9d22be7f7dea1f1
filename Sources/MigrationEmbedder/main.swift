import Foundation

// Build tool of the EmbedMigrations plugin: `MigrationEmbedder OUTPUT FILE…` writes a Swift
// file defining `EmbeddedMigrations.files`, each file's name and its exact bytes as base64
// (a string literal keeps the compile fast and cannot alter a byte).
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: MigrationEmbedder OUTPUT FILE...\n".utf8))
    exit(2)
}
var source = """
    // Generated at build time by the EmbedMigrations plugin from migrations/*.sql. Do not edit.

    extension EmbeddedMigrations {
        /// Every `migrations/*.sql` file of the build, by file name, as base64 of its bytes.
        public static let files: [(fileName: String, base64: String)] = [

    """
for path in arguments.dropFirst() {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("MigrationEmbedder: cannot read \(path)\n".utf8))
        exit(1)
    }
    let name = URL(fileURLWithPath: path).lastPathComponent
    guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) else {
        FileHandle.standardError.write(Data("MigrationEmbedder: unexpected file name \(name)\n".utf8))
        exit(1)
    }
    source += "        (\"\(name)\", \"\(data.base64EncodedString())\"),\n"
}
source += "    ]\n}\n"
do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("MigrationEmbedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
