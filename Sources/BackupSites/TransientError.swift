import SFTP

/// An error that knows whether trying again may succeed (a broken connection, a time-out),
/// as opposed to one that will recur (a wrong host key, a full disk, a size mismatch).
public protocol TransientError: Error {
    var isTransient: Bool { get }
}

extension SFTPError: TransientError {}
