/// The bytes an upload keeps in flight, and the buffer they are read into.
///
/// libssh2 1.10's `libssh2_sftp_write` turns everything it is given into 30,000-byte SFTP
/// write requests sent ahead, returns as soon as the first ones are acknowledged, and expects
/// the next call to start at the first unacknowledged byte, repeating the bytes it has
/// already queued. Passing a window that slides over a larger buffer keeps the server busy
/// without the pause a fixed 1 MiB piece costs at its end, when the last request must be
/// acknowledged before the next piece is read.
public struct UploadWindow {
    /// Bytes offered to each `libssh2_sftp_write` call: the requests in flight (4 MiB ≈ 140).
    let window: Int
    /// The buffer: twice the window, so that a read of at least `window` bytes fits after
    /// the unacknowledged bytes are moved to its start.
    let capacity: Int

    /// The default window, 4 MiB (≈140 write requests).
    public static let defaultWindow = 4 << 20

    /// `window` must be positive.
    init(window: Int = defaultWindow) {
        precondition(window > 0, "an upload window must hold at least one byte")
        self.window = window
        capacity = 2 * window
    }
}

/// Positions in an `UploadWindow`'s buffer: `start..<end` holds bytes read but not yet
/// acknowledged by the server. Pure arithmetic, tested without a server.
struct UploadWindowState: Equatable {
    var start = 0
    var end = 0
    var atEndOfFile = false

    /// Whether the next step reads: the window is not full and the file has more.
    func needsRead(_ shape: UploadWindow) -> Bool { !atEndOfFile && end - start < shape.window }

    /// Moves the unacknowledged bytes to the buffer's start when less than a window is free
    /// behind them. Returns the range to move (`from`, `count`), or nil when nothing moves.
    mutating func compact(_ shape: UploadWindow) -> (from: Int, count: Int)? {
        guard shape.capacity - end < shape.window, start > 0 else { return nil }
        let move = (from: start, count: end - start)
        end -= start
        start = 0
        return move
    }

    /// The bytes to offer the next write: at most a window from `start`.
    func offer(_ shape: UploadWindow) -> Range<Int> { start..<min(end, start + shape.window) }

    /// Records a read of `count` bytes (0: end of file).
    mutating func didRead(_ count: Int) {
        if count == 0 { atEndOfFile = true } else { end += count }
    }

    /// Records `count` bytes acknowledged by the server.
    mutating func didWrite(_ count: Int) {
        start += min(count, end - start)
    }

    /// True once every byte of the file was read and acknowledged.
    var isDone: Bool { atEndOfFile && start == end }
}
