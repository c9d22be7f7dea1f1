import Dispatch
import Synchronization

/// A bounded hand-off between the thread that reads rows from PostgreSQL (COPY) and the
/// thread that compresses and encrypts them, so the two overlap and memory stays bounded
/// (`capacity` chunks in flight). The consumer's failure stops the producer at its next send.
final class ArchivePipe: Sendable {
    enum Item: Sendable {
        /// A new entry (file) inside the archive.
        case begin(String)
        /// Bytes of the current entry, ending on a record boundary, and the records they hold.
        case data([UInt8], records: Int)
        case end
        /// Asks the consumer to publish what it wrote so far and signal (`ArchivePacker.packPart`).
        case sync
        case finish
    }

    private let items = Mutex<[Item]>([])
    private let free: DispatchSemaphore
    private let ready = DispatchSemaphore(value: 0)
    private let failure = Mutex<(any Error)?>(nil)

    init(capacity: Int = 8) { free = DispatchSemaphore(value: capacity) }

    /// Producer: hands `item` over, waiting while `capacity` items are in flight. Throws the
    /// consumer's error once it failed.
    func send(_ item: Item) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        put(item)
    }

    /// Producer: the last item, handed over even after a failure so the consumer stops.
    func finish() { put(.finish) }

    private func put(_ item: Item) {
        free.wait()
        items.withLock { $0.append(item) }
        ready.signal()
    }

    /// Consumer: the next item, waiting for one.
    func receive() -> Item {
        ready.wait()
        let item = items.withLock { $0.removeFirst() }
        free.signal()
        return item
    }

    /// Consumer: records its failure; it keeps receiving (and dropping) until `.finish`.
    func fail(_ error: any Error) { failure.withLock { if $0 == nil { $0 = error } } }
    var error: (any Error)? { failure.withLock { $0 } }
}
