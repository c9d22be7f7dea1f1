import Foundation
import Testing

@testable import SFTP

@Suite("The upload window's bookkeeping, without a server")
struct UploadWindowTests {
    /// Drives the state as the upload loop does, over a file of `size` bytes, with the
    /// server acknowledging `acknowledge(offered)` bytes per write; returns the bytes in the
    /// order they were acknowledged, rebuilt from a simulated buffer.
    func simulate(size: Int, window: Int, acknowledge: (Int) -> Int) -> [UInt8] {
        let file = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let shape = UploadWindow(window: window)
        var buffer = [UInt8](repeating: 0, count: shape.capacity)
        var state = UploadWindowState()
        var readOffset = 0
        var acknowledged: [UInt8] = []
        var steps = 0
        while !state.isDone {
            steps += 1
            precondition(steps < 1_000_000, "the upload loop does not end")
            if state.needsRead(shape) {
                if let move = state.compact(shape) {
                    let moved = Array(buffer[move.from..<move.from + move.count])
                    buffer.replaceSubrange(0..<move.count, with: moved)
                }
                let count = min(shape.capacity - state.end, size - readOffset, 3 * window / 2 + 1)
                buffer.replaceSubrange(state.end..<state.end + count, with: file[readOffset..<readOffset + count])
                readOffset += count
                state.didRead(count)
                continue
            }
            let offer = state.offer(shape)
            if offer.isEmpty || offer.count > window { Issue.record("offered \(offer) with a window of \(window)") }
            let count = min(offer.count, acknowledge(offer.count))
            acknowledged += buffer[offer.lowerBound..<offer.lowerBound + count]
            state.didWrite(count)
        }
        #expect(acknowledged == file)
        return acknowledged
    }

    @Test(arguments: [0, 1, 29_999, 30_000, 100_000, 1 << 20, 3 * (1 << 20) + 17])
    func everyByteIsOfferedOnceInOrder(size: Int) {
        _ = simulate(size: size, window: 64 << 10) { min($0, 30_000) }
        _ = simulate(size: size, window: 64 << 10) { $0 }
        if size <= 100_000 { _ = simulate(size: size, window: 1000) { _ in 1 } }
    }

    @Test func emptyFileIsDoneAfterOneRead() {
        let shape = UploadWindow(window: 4)
        var state = UploadWindowState()
        #expect(state.needsRead(shape))
        state.didRead(0)
        #expect(state.isDone)
        #expect(!state.needsRead(shape))
    }

    @Test func compactionLeavesRoomForAWindow() {
        let shape = UploadWindow(window: 10)
        var state = UploadWindowState(start: 15, end: 19, atEndOfFile: false)
        let move = state.compact(shape)
        #expect(move?.from == 15 && move?.count == 4)
        #expect(state == UploadWindowState(start: 0, end: 4, atEndOfFile: false))
        #expect(shape.capacity - state.end >= shape.window)
        var roomy = UploadWindowState(start: 3, end: 5, atEndOfFile: false)
        #expect(roomy.compact(shape) == nil)
    }
}
