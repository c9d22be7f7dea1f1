/// The states of an archive file (a row of `lethe.archive_files`, shown in `lethe.backup_log`).
public enum ArchiveFileState: String, Sendable, CaseIterable, Codable {
    case archiving, uploading, uploaded, downloaded, deleting, deleted
    /// Replaced by the next generation of the job's files; removed from the sites once every
    /// site holds every file of the new generation. Final: never deleted rows' evidence.
    case superseded
    case uploadFailed = "upload_failed"
    case deleteFailed = "delete_failed"

    /// The state after `event`, or nil when the event is not allowed in this state.
    public func after(_ event: ArchiveFileEvent) -> ArchiveFileState? { event.transition(from: self) }
}

/// What happens to an archive file. A file every site holds is `uploaded`, or `downloaded`
/// once a site confirmed it pulled the file: the events that make a file held again say which.
public enum ArchiveFileEvent: Sendable, Hashable, CaseIterable, StateMachineEvent {
    /// The packer wrote the file.
    case pack
    /// The job is packed again under new names (files were lost).
    case supersede
    /// An upload to a site failed: retried later.
    case failUpload
    /// Every site holds the file (not yet held while being deleted).
    case upload(downloaded: Bool)
    /// A site no longer holds the file as uploaded: upload again.
    case reupload
    /// A site confirmed it pulled the file (`lethe.confirm_archive_download`).
    case confirmDownload
    /// The job's deletion began.
    case beginDeletion
    /// The job's deletion stopped (a hold, a policy change): held again.
    case pauseDeletion(downloaded: Bool)
    /// A deletion batch failed: retried later.
    case failDeletion
    /// The job's rows are deleted.
    case finishDeletion
    /// An operator retries a failed upload now (`lethe.retry_archive`, a migration's function).
    case retryUpload
    /// An operator retries a failed deletion now (`lethe.retry_archive`).
    case retryDeletion

    public static let allCases: [ArchiveFileEvent] = [
        .pack, .supersede, .failUpload, .upload(downloaded: false), .upload(downloaded: true), .reupload,
        .confirmDownload, .beginDeletion, .pauseDeletion(downloaded: false), .pauseDeletion(downloaded: true),
        .failDeletion, .finishDeletion, .retryUpload, .retryDeletion,
    ]

    public var sources: Set<ArchiveFileState> {
        switch self {
        case .pack: [.archiving]
        case .supersede: [.uploading, .uploadFailed, .uploaded, .downloaded]
        case .failUpload: [.uploading, .uploadFailed]
        // Any state but the deletion's own: recording the uploads never undoes a deletion.
        // Nor revives a superseded file.
        case .upload: Set(ArchiveFileState.allCases).subtracting([.deleting, .deleted, .superseded])
        case .reupload, .confirmDownload: [.uploaded, .downloaded]
        case .beginDeletion: [.uploaded, .downloaded, .deleting, .deleteFailed]
        case .pauseDeletion, .failDeletion, .finishDeletion: [.deleting, .deleteFailed]
        case .retryUpload: [.uploadFailed]
        case .retryDeletion: [.deleteFailed]
        }
    }

    public var target: ArchiveFileState {
        switch self {
        case .pack, .reupload, .retryUpload: .uploading
        case .failUpload: .uploadFailed
        case .upload(let downloaded), .pauseDeletion(let downloaded): downloaded ? .downloaded : .uploaded
        case .confirmDownload: .downloaded
        case .beginDeletion, .retryDeletion: .deleting
        case .failDeletion: .deleteFailed
        case .supersede: .superseded
        case .finishDeletion: .deleted
        }
    }
}
