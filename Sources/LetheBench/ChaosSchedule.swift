/// A fault a chaos run injected: when (seconds into the fault phase), what, on what.
struct ChaosFault {
    enum Kind: String, CaseIterable {
        case workerKill = "kill -9 worker"
        case coordinatorKill = "kill -9 leading coordinator"
        case postgresRestart = "PostgreSQL restart"
        case sshdStop = "sshd stopped"
        case spoolDelete = "spool directory deleted"
        case workerPause = "worker paused past its lease"
        case forbiddenDeletion = "forbidden deletion (test only)"
    }

    var at: Double
    var kind: Kind
    var target: String
}

/// When each fault comes, drawn from the seed: a worker killed every 1.5 to 4.5 s, the
/// leading coordinator twice, PostgreSQL once, one sshd stopped for a minute per ten
/// minutes of run (at least 10 s), the spool deleted twice, a worker paused once.
struct ChaosSchedule {
    private var events: [(at: Double, kind: ChaosFault.Kind)] = []

    init(settings: ChaosSettings, lease: Double) {
        var random = ChaosRandom(seed: settings.seed &+ 2)
        let length = Double(settings.seconds)
        func at(_ from: Double, _ to: Double) -> Double {
            Double.random(in: (length * from)...(length * to), using: &random)
        }
        var time = 3.0
        while time < length - 3 {
            events.append((time, .workerKill))
            time += Double.random(in: 1.5...4.5, using: &random)
        }
        events.append((at(0.15, 0.4), .coordinatorKill))
        events.append((at(0.6, 0.85), .coordinatorKill))
        events.append((at(0.3, 0.7), .postgresRestart))
        events.append((at(0.1, 0.4), .sshdStop))
        events.append((at(0.2, 0.5), .spoolDelete))
        events.append((at(0.5, 0.8), .spoolDelete))
        events.append((at(0.2, 0.8), .workerPause))
        if settings.injectForbiddenDeletion { events.append((at(0.4, 0.6), .forbiddenDeletion)) }
        events.sort { $0.at < $1.at }
    }

    var faultCount: Int { events.count }
    var isEmpty: Bool { events.isEmpty }

    /// The events due by `now`, removed from the schedule.
    mutating func due(at now: Double) -> [ChaosFault.Kind] {
        let due = events.prefix { $0.at <= now }
        events.removeFirst(due.count)
        return due.map(\.kind)
    }

    /// How long sshd stays down: a minute per ten minutes of faults, at least 10 s.
    static func sshdOutage(_ seconds: Int) -> Double { max(10, 60 * Double(seconds) / 600) }
}
