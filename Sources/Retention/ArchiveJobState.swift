/// The states of an archive job (a row of `lethe.archive_jobs`; see docs/archives.md).
public enum ArchiveJobState: String, Sendable, CaseIterable, Codable {
    case planning, packing, uploading, uploaded, deleting, deleted

    /// The state after `event`, or nil when the event is not allowed in this state.
    public func after(_ event: ArchiveJobEvent) -> ArchiveJobState? { event.transition(from: self) }
}

/// What happens to an archive job; each step resumes from the recorded state after a crash.
public enum ArchiveJobEvent: String, Sendable, CaseIterable, StateMachineEvent {
    /// The manifest is recorded.
    case plan
    /// The files are written and recorded in the backup log.
    case pack
    /// Files are lost (not in this worker's spool, held by no site as recorded): pack again
    /// as the next generation, under new names; the earlier files are superseded. Never
    /// under the same names: a site may hold a file whose upload was not recorded.
    case supersede
    /// Every site holds every file.
    case upload
    /// A site no longer holds a file as uploaded: upload again.
    case reupload
    /// Deletion is due and every site was verified (again after a pause or crash).
    case beginDeletion
    /// Deletion stopped (a hold, a policy change): wait again.
    case pauseDeletion
    /// Every deletion batch ran.
    case finishDeletion

    public var sources: Set<ArchiveJobState> {
        switch self {
        case .plan: [.planning]
        case .pack: [.packing]
        case .supersede, .upload: [.uploading]
        case .reupload: [.uploaded]
        case .beginDeletion: [.uploaded, .deleting]
        case .pauseDeletion, .finishDeletion: [.deleting]
        }
    }

    public var target: ArchiveJobState {
        switch self {
        case .plan, .supersede: .packing
        case .pack, .reupload: .uploading
        case .upload, .pauseDeletion: .uploaded
        case .beginDeletion: .deleting
        case .finishDeletion: .deleted
        }
    }
}
