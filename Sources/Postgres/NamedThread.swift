import Foundation

/// Starts OS threads that carry their name where `top -H`, gdb and `/proc/*/task/*/comm`
/// show it (the first 15 bytes, the kernel's limit).
///
/// The new thread names itself through `/proc/thread-self/comm` (Linux): Foundation's
/// `Thread.name`, set from inside, is lost when the thread runs before `start()` has
/// returned in its parent, and the thread then keeps its parent's name.
public enum NamedThread {
    public static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            if let comm = FileHandle(forWritingAtPath: "/proc/thread-self/comm") {
                try? comm.write(contentsOf: Data(name.utf8.prefix(15)))
                try? comm.close()
            }
            Thread.current.name = name
            body()
        }
        thread.start()
    }
}
