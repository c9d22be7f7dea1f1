import Retention
import Testing

/// Every (state, event) pair of each machine against a table written out here: a transition
/// added, removed or redirected in `Retention` must be made here too, on purpose.
@Suite struct StateMachineTests {
    /// Each event's allowed transitions (from → to); every pair not listed is refused.
    static let task: [TaskEvent: [TaskState: TaskState]] = [
        .claim: [.available: .running, .failed: .running],
        .succeed: [.running: .succeeded],
        .yield: [.running: .available],
        .release: [.running: .available],
        .fail: [.running: .failed],
        .failLastAttempt: [.running: .dead],
        .failPermanently: [.running: .dead],
        .rescue: [.running: .failed],
        .rescueLastAttempt: [.running: .dead],
        .retry: [.failed: .available, .dead: .available, .cancelled: .available],
        .cancel: [.available: .cancelled, .running: .cancelled, .failed: .cancelled],
    ]

    static let archiveJob: [ArchiveJobEvent: [ArchiveJobState: ArchiveJobState]] = [
        .plan: [.planning: .packing],
        .pack: [.packing: .uploading],
        .supersede: [.uploading: .packing],
        .upload: [.uploading: .uploaded],
        .reupload: [.uploaded: .uploading],
        .beginDeletion: [.uploaded: .deleting, .deleting: .deleting],
        .pauseDeletion: [.deleting: .uploaded],
        .finishDeletion: [.deleting: .deleted],
    ]

    static let archiveFile: [ArchiveFileEvent: [ArchiveFileState: ArchiveFileState]] = [
        .pack: [.archiving: .uploading],
        .supersede: [
            .uploading: .superseded, .uploadFailed: .superseded, .uploaded: .superseded, .downloaded: .superseded,
        ],
        .failUpload: [.uploading: .uploadFailed, .uploadFailed: .uploadFailed],
        .upload(downloaded: false): [
            .archiving: .uploaded, .uploading: .uploaded, .uploaded: .uploaded, .downloaded: .uploaded,
            .uploadFailed: .uploaded, .deleteFailed: .uploaded,
        ],
        .upload(downloaded: true): [
            .archiving: .downloaded, .uploading: .downloaded, .uploaded: .downloaded, .downloaded: .downloaded,
            .uploadFailed: .downloaded, .deleteFailed: .downloaded,
        ],
        .reupload: [.uploaded: .uploading, .downloaded: .uploading],
        .confirmDownload: [.uploaded: .downloaded, .downloaded: .downloaded],
        .beginDeletion: [.uploaded: .deleting, .downloaded: .deleting, .deleting: .deleting, .deleteFailed: .deleting],
        .pauseDeletion(downloaded: false): [.deleting: .uploaded, .deleteFailed: .uploaded],
        .pauseDeletion(downloaded: true): [.deleting: .downloaded, .deleteFailed: .downloaded],
        .failDeletion: [.deleting: .deleteFailed, .deleteFailed: .deleteFailed],
        .finishDeletion: [.deleting: .deleted, .deleteFailed: .deleted],
        .retryUpload: [.uploadFailed: .uploading],
        .retryDeletion: [.deleteFailed: .deleting],
    ]

    static func check<Event: StateMachineEvent & Hashable & CaseIterable>(
        _ table: [Event: [Event.State: Event.State]]
    ) {
        #expect(Set(table.keys) == Set(Event.allCases), "the table lists every event once")
        for event in Event.allCases {
            for state in Event.State.allCases {
                #expect(
                    event.transition(from: state) == table[event]?[state],
                    "\(event) from \(state.rawValue)")
            }
        }
    }

    @Test func taskTransitions() {
        Self.check(Self.task)
        for state in TaskState.allCases { #expect(state.after(.claim) == Self.task[.claim]?[state]) }
    }

    @Test func archiveJobTransitions() {
        Self.check(Self.archiveJob)
        for state in ArchiveJobState.allCases { #expect(state.after(.plan) == Self.archiveJob[.plan]?[state]) }
    }

    @Test func archiveFileTransitions() {
        Self.check(Self.archiveFile)
        for state in ArchiveFileState.allCases {
            #expect(state.after(.beginDeletion) == Self.archiveFile[.beginDeletion]?[state])
        }
    }

    /// Finished tasks leave only by an operator's retry (a succeeded one never does);
    /// unfinished ones can always be cancelled.
    @Test func finishedTasksOnlyLeaveByRetry() {
        for state in TaskState.allCases {
            let leaving = TaskEvent.allCases.filter { state.after($0) != nil }
            if state.isFinished {
                #expect(leaving == (state == .succeeded ? [] : [.retry]), "\(state)")
            } else {
                #expect(leaving.contains(.cancel), "\(state)")
            }
        }
    }

    /// A deleted job or file is final, and so is a superseded file (nothing uploads, confirms
    /// or deletes under it again).
    @Test func deletedIsFinal() {
        #expect(ArchiveJobEvent.allCases.allSatisfy { ArchiveJobState.deleted.after($0) == nil })
        #expect(ArchiveFileEvent.allCases.allSatisfy { ArchiveFileState.deleted.after($0) == nil })
        #expect(ArchiveFileEvent.allCases.allSatisfy { ArchiveFileState.superseded.after($0) == nil })
    }
}
