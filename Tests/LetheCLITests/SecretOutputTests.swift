import Foundation
import TestSupport
import Testing

@testable import LetheConfiguration

/// A password never reaches what `lethe` prints, whatever form it is written in.
@Suite struct SecretOutputTests {
    @Test(arguments: [
        "host=127.0.0.1 port=x password = hunter2", "host=127.0.0.1 port=x PASSWORD='hunter2'",
        "host=127.0.0.1 port=99999 password=hunter2", "postgresql://u:hunter2@127.0.0.1:x/db",
        "postgresql://u@127.0.0.1:x/db?password=hunter2", "postgresql://u:hun%zzter2@127.0.0.1/db",
        "host=127.0.0.1 port=1 connect_timeout=2 password = 'hunter2' dbname=nosuch",
    ])
    func statusNeverPrintsTheDatabasePassword(_ url: String) throws {
        let result = try LetheProcess.run(["status", "--database-url", url])
        #expect(result.status != 0)
        #expect(!result.output.contains("hunter2") && !result.output.contains("ter2"), "\(result.output)")
    }

    @Test func pgpasswordIsNeverEchoed() throws {
        let result = try LetheProcess.run(
            ["status", "--database-url", "host=127.0.0.1 port=1 connect_timeout=2 dbname=hunter2-db"],
            environment: ["PGPASSWORD": "hunter2"])
        #expect(result.status != 0)
        #expect(!result.output.contains("hunter2"), "\(result.output)")
    }

    /// Yams quotes the offending line in its errors; Lethe keeps the line and column only.
    @Test(arguments: [
        "database:\n  url: \"postgresql://u:hunter2@db/app\n",  // unterminated quote
        "database:\n  url: postgresql://u:hunter2@db/app\n   bad: [\n",
        "database: { url: 'host=db password=hunter2' \nlog: x\n",
        "database:\n  url: host=db password=hunter2\n\tlog: debug\n",
        "database:\n  url: host=db password=hunter2\n  url: again-hunter2\n",
    ])
    func yamlErrorsNeverQuoteTheFile(_ yaml: String) throws {
        let path = try writeConfig(yaml)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try LetheProcess.run(["status", "--config", path])
        #expect(result.status == 2, "\(result.output)")
        #expect(!result.output.contains("hunter2"), "\(result.output)")
        #expect(result.stderr.contains(path))
        #expect(result.stderr.contains("line "), "\(result.stderr)")
    }

    @Test func yamlErrorsNameLineAndColumn() {
        let error = #expect(throws: UsageError.self) {
            try Configuration.parse("database:\n  url: \"host=db password=hunter2\n", source: "lethe.yml")
        }
        #expect(error?.description.contains("hunter2") == false)
        #expect(error?.description.contains("lethe.yml") == true)
        #expect(error?.description.contains("line 3") == true || error?.description.contains("line 2") == true)
    }
}
