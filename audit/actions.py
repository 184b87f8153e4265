"""The closed vocabulary of audit actions. Every audit row's `action` is one of these values.

Call sites pass a member (`AuditAction.CASE_CREATED`), never a string: `audit_event_record` refuses anything
else, so a new kind of event is added here first, with its description, and documented in
docs/audit-and-permissions.md (a test checks that every member is there). The values are what the rows hold;
they never change once released, because the hash chain covers them and filters use them.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # Sign-in
    AUTH_LOGIN = "auth.login"
    AUTH_LOGOUT = "auth.logout"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKOUT = "auth.lockout"
    AUTH_TOKEN_OBTAINED = "auth.token_obtained"
    AUTH_TOTP_ENROLLED = "auth.totp_enrolled"
    AUTH_TOTP_VERIFIED = "auth.totp_verified"
    AUTH_TOKEN_REVOKED = "auth.token_revoked"
    AUTH_TOTP_DEVICE_ADDED = "auth.totp_device_added"
    AUTH_TOTP_REMOVED = "auth.totp_removed"
    AUTH_TOKEN_ROTATED = "auth.token_rotated"
    # Users, roles and teams
    USER_CREATED = "user.created"
    USER_PASSWORD_RESET = "user.password_reset"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_STAFF_CHANGED = "user.staff_changed"
    USER_SUPERUSER_CHANGED = "user.superuser_changed"
    ROLE_GRANTED = "role.granted"
    ROLE_REVOKED = "role.revoked"
    GROUP_USER_ADDED = "group.user_added"
    GROUP_USER_REMOVED = "group.user_removed"
    PERMISSION_GRANTED = "permission.granted"
    PERMISSION_REVOKED = "permission.revoked"
    GRANT_REFUSED = "grant.refused"
    TEAM_CREATED = "team.created"
    TEAM_MEMBER_ADDED = "team.member_added"
    TEAM_MEMBER_REMOVED = "team.member_removed"
    TEAM_SUPERVISOR_ADDED = "team.supervisor_added"
    TEAM_SUPERVISOR_REMOVED = "team.supervisor_removed"
    # Cases
    CASE_CREATED = "case.created"
    CASE_MEMBER_ADDED = "case.member_added"
    CASE_MEMBER_REMOVED = "case.member_removed"
    CASE_CLOSED = "case.closed"
    CASE_REOPENED = "case.reopened"
    CASE_RETENTION_PURGED = "case.retention_purged"
    # Probes and their faces
    PROBE_UPLOADED = "probe.uploaded"
    PROBE_PROCESSED = "probe.processed"
    PROBE_FAILED = "probe.failed"
    PROBE_FACE_DRAWN = "probe.face_drawn"
    PROBE_IMAGE_VIEWED = "probe.image_viewed"
    PROBE_FACE_MARKED = "probe.face_marked"
    PROBE_ENHANCEMENT_PREVIEWED = "probe.enhancement_previewed"
    PROBE_DERIVED = "probe.derived"
    # Video evidence
    VIDEO_UPLOADED = "video.uploaded"
    VIDEO_PROCESSED = "video.processed"
    VIDEO_FAILED = "video.failed"
    VIDEO_VIEWED = "video.viewed"
    VIDEO_FRAME_GRABBED = "video.frame_grabbed"
    VIDEO_TRACK_PREPARED = "video.track_prepared"
    VIDEO_MERGE_DECIDED = "video.merge_decided"
    # Searches, candidates and decisions
    SEARCH_REQUESTED = "search.requested"
    SEARCH_COMPLETED = "search.completed"
    SEARCH_FAILED = "search.failed"
    SEARCH_CANDIDATES_VIEWED = "search.candidates_viewed"
    SEARCH_REPORT_DOWNLOADED = "search.report_downloaded"
    CANDIDATE_VIEWED = "candidate.viewed"
    CANDIDATE_DECIDED = "candidate.decided"
    CANDIDATE_IMAGE_VIEWED = "candidate.image_viewed"
    # Galleries
    GALLERY_CREATE = "gallery.create"
    GALLERY_ENROL_START = "gallery.enrol_start"
    GALLERY_ENROL = "gallery.enrol"
    GALLERY_IMAGE_DELETE = "gallery.image_delete"
    GALLERY_SUBJECT_DELETE = "gallery.subject_delete"
    GALLERY_PURGE = "gallery.purge"
    GALLERY_RETENTION_SET = "gallery.retention_set"
    GALLERY_PURGE_REQUESTED = "gallery.purge_requested"
    GALLERY_ENROL_RESUME = "gallery.enrol_resume"
    MODELPACK_VERIFIED = "modelpack.verified"
    MODELPACK_ACTIVATED = "modelpack.activated"
    MODELPACK_REEMBED_START = "modelpack.reembed_start"
    MODELPACK_REEMBED = "modelpack.reembed"
    GALLERY_ENROL_INTERRUPTED = "gallery.enrol_interrupted"
    GALLERY_THRESHOLD_SET = "gallery.threshold_set"
    # Accuracy evidence and thresholds
    ACCURACY_VIEWED = "accuracy.viewed"
    ACCURACY_ANNEX_DOWNLOADED = "accuracy.annex_downloaded"
    THRESHOLD_SYSTEM_SET = "threshold.system_set"
    # Accuracy evaluations
    EVALUATION_RUN_RECORDED = "evaluation.run_recorded"
    EVALUATION_RUN_QUEUED = "evaluation.run_queued"
    # Score normalisation cohorts
    COHORT_BUILT = "cohort.built"
    COHORT_ACTIVATED = "cohort.activated"
    COHORT_DEACTIVATED = "cohort.deactivated"
    # Housekeeping
    STORAGE_ORPHANS_REMOVED = "storage.orphans_removed"
    # The audit trail itself
    AUDIT_EXPORTED = "audit.exported"
    # Review queue, notifications, re-search and case notes (cases.queue, cases.notifications, cases.research,
    # cases.notes)
    QUEUE_VIEWED = "queue.viewed"
    NOTIFICATIONS_VIEWED = "notification.viewed"
    NOTIFICATION_READ = "notification.read"
    SEARCH_KEEP_SEARCHING_STARTED = "search.keep_searching_started"
    SEARCH_KEEP_SEARCHING_STOPPED = "search.keep_searching_stopped"
    SEARCH_RESEARCHED = "search.researched"
    CASE_NOTE_ADDED = "case.note_added"
    CASE_NOTE_EDITED = "case.note_edited"


# What each action records, shown in the audit filter and kept in step with docs/audit-and-permissions.md.
AUDIT_ACTION_DESCRIPTIONS: dict[AuditAction, str] = {
    AuditAction.AUTH_LOGIN: "A user signed in on the web.",
    AuditAction.AUTH_LOGOUT: "A user signed out.",
    AuditAction.AUTH_LOGIN_FAILED: "A sign-in failed: attempted username and reason (never the password).",
    AuditAction.AUTH_LOCKOUT: "A username and address were locked out after repeated failures.",
    AuditAction.AUTH_TOKEN_OBTAINED: "A user exchanged their credentials for an API token.",
    AuditAction.AUTH_TOTP_ENROLLED: "A user set up an authenticator app.",
    AuditAction.AUTH_TOTP_VERIFIED: "A session was verified with the authenticator app.",
    AuditAction.AUTH_TOKEN_REVOKED: "API tokens were revoked: by whom, how many, why.",
    AuditAction.AUTH_TOTP_DEVICE_ADDED: "An authenticator app was added to an account, not yet confirmed.",
    AuditAction.AUTH_TOTP_REMOVED: "A user's authenticator apps were removed.",
    AuditAction.AUTH_TOKEN_ROTATED: "A user replaced an API token with a new one; the old one was revoked with it.",
    AuditAction.USER_CREATED: "A user account was created: username and by whom.",
    AuditAction.USER_PASSWORD_RESET: "A user's password was set by someone else (e.g. demo set-up).",
    AuditAction.USER_PASSWORD_CHANGED: "A user's password was changed other than by an admin reset.",
    AuditAction.USER_DEACTIVATED: "A user account was disabled (its API tokens die with it).",
    AuditAction.USER_REACTIVATED: "A disabled user account was enabled again.",
    AuditAction.USER_STAFF_CHANGED: "A user's staff flag (access to the Django admin) changed.",
    AuditAction.USER_SUPERUSER_CHANGED: "A user's superuser flag changed (never from rfr's pages).",
    AuditAction.ROLE_GRANTED: "A role (investigator, supervisor, admin) was granted to a user.",
    AuditAction.ROLE_REVOKED: "A role was taken from a user.",
    AuditAction.GROUP_USER_ADDED: "A user was put in a group that is not a role (e.g. a team's supervisor group).",
    AuditAction.GROUP_USER_REMOVED: "A user was taken out of a group that is not a role.",
    AuditAction.PERMISSION_GRANTED: "A permission was given to a user or group outside rfr's services.",
    AuditAction.PERMISSION_REVOKED: "A permission was taken from a user or group outside rfr's services.",
    AuditAction.GRANT_REFUSED: "An attempt to change grants was refused (one's own account; a read-only admin).",
    AuditAction.TEAM_CREATED: "A team was created.",
    AuditAction.TEAM_MEMBER_ADDED: "A user joined a team.",
    AuditAction.TEAM_MEMBER_REMOVED: "A user left a team.",
    AuditAction.TEAM_SUPERVISOR_ADDED: "A user became a supervisor of a team (and sees its cases).",
    AuditAction.TEAM_SUPERVISOR_REMOVED: "A user stopped supervising a team.",
    AuditAction.CASE_CREATED: "A case was opened: reference, purpose, team.",
    AuditAction.CASE_MEMBER_ADDED: "The owner gave a user access to a case.",
    AuditAction.CASE_MEMBER_REMOVED: "The owner took a user's access to a case away.",
    AuditAction.CASE_CLOSED: "A case was closed, with the reason.",
    AuditAction.CASE_REOPENED: "A supervisor reopened a closed case, with the reason.",
    AuditAction.CASE_RETENTION_PURGED: "A closed case's probes and results were deleted under the retention rule.",
    AuditAction.PROBE_UPLOADED: "A probe image was added: sha256, file name, size, source, capture time, lawful basis.",
    AuditAction.PROBE_PROCESSED: "Faces were found in a probe: how many, with which model pack.",
    AuditAction.PROBE_FAILED: "A probe could not be processed: code and message.",
    AuditAction.PROBE_FACE_DRAWN: "A person drew a box where the detector missed a face, and a face was found.",
    AuditAction.PROBE_IMAGE_VIEWED: "Someone viewed a probe image or one of its face crops.",
    AuditAction.PROBE_FACE_MARKED: "A person marked a face's five landmarks by hand: the points, and who.",
    AuditAction.PROBE_ENHANCEMENT_PREVIEWED: "Someone previewed an enhancement chain on a probe (nothing stored).",
    AuditAction.PROBE_DERIVED: "An enhanced image was made from a probe: parent sha256, the chain, new sha256.",
    AuditAction.VIDEO_UPLOADED: "Footage was added: sha256, file name, size, codec, duration, source, lawful basis.",
    AuditAction.VIDEO_PROCESSED: "Faces were found and tracked in footage: frames, faces, tracks, model pack.",
    AuditAction.VIDEO_FAILED: "Footage could not be processed: code and message.",
    AuditAction.VIDEO_VIEWED: "Someone viewed footage: the original, a frame at a time code, or a track's shots.",
    AuditAction.VIDEO_FRAME_GRABBED: "A frame of footage was taken as a still probe: video sha256, time code.",
    AuditAction.VIDEO_TRACK_PREPARED: "A track's fused template became a still probe to search: shots, time codes.",
    AuditAction.VIDEO_MERGE_DECIDED: "A person confirmed or rejected a proposed merge of two tracks.",
    AuditAction.SEARCH_REQUESTED: "A search was asked for: face, galleries, settings, justification.",
    AuditAction.SEARCH_COMPLETED: "A search finished: how many candidates, with which pack.",
    AuditAction.SEARCH_FAILED: "A search could not be completed.",
    AuditAction.SEARCH_CANDIDATES_VIEWED: "Someone viewed a search's candidate list (page or API).",
    AuditAction.SEARCH_REPORT_DOWNLOADED: "Someone downloaded a search's PDF report: its sha256.",
    AuditAction.CANDIDATE_VIEWED: "Someone opened one candidate side by side with the probe face.",
    AuditAction.CANDIDATE_DECIDED: "A person assessed a candidate: stage, verdict, rationale, resulting outcome.",
    AuditAction.CANDIDATE_IMAGE_VIEWED: "Someone viewed a candidate's gallery image or its aligned crop.",
    AuditAction.GALLERY_CREATE: "A gallery was created: name, kind, retention, index mode.",
    AuditAction.GALLERY_ENROL_START: "A bulk enrolment run started: files listed, source.",
    AuditAction.GALLERY_ENROL: "Images were enrolled into a gallery (one image, or a run's final counts).",
    AuditAction.GALLERY_IMAGE_DELETE: "A gallery image and its templates were deleted, with the reason.",
    AuditAction.GALLERY_SUBJECT_DELETE: "A gallery subject with all images and templates was deleted, with the reason.",
    AuditAction.GALLERY_PURGE: "Gallery images past their retention period were deleted.",
    AuditAction.GALLERY_RETENTION_SET: "A gallery's retention rule was changed: before and after.",
    AuditAction.GALLERY_PURGE_REQUESTED: "An admin ran a gallery's retention purge now: images deleted.",
    AuditAction.GALLERY_ENROL_RESUME: "An admin queued an unfinished bulk enrolment run again: files pending.",
    AuditAction.MODELPACK_VERIFIED: "An admin checked a model pack's file hashes: the result.",
    AuditAction.MODELPACK_ACTIVATED: "An admin made a model pack the active one: before and after.",
    AuditAction.MODELPACK_REEMBED_START: "A re-embedding of every gallery image with a model pack started.",
    AuditAction.MODELPACK_REEMBED: "A re-embedding run ended: images embedded, skipped and failed.",
    AuditAction.GALLERY_ENROL_INTERRUPTED: "A bulk enrolment run whose command or job died was marked interrupted.",
    AuditAction.GALLERY_THRESHOLD_SET: "A gallery default threshold was set or cleared, with the reason and evidence.",
    AuditAction.ACCURACY_VIEWED: "Someone viewed the accuracy and fairness figures of a model pack.",
    AuditAction.ACCURACY_ANNEX_DOWNLOADED: "Someone downloaded the accuracy and fairness PDF annex: pack, sha256.",
    AuditAction.THRESHOLD_SYSTEM_SET: "A pack's system default threshold was set: before, after, reason, evidence.",
    AuditAction.EVALUATION_RUN_RECORDED: "An accuracy evaluation of a model pack was stored: data set, labels sha256.",
    AuditAction.EVALUATION_RUN_QUEUED: "An admin queued an accuracy evaluation on a server folder.",
    AuditAction.COHORT_BUILT: "A score-normalisation cohort was built for a pack: size, composition, threshold.",
    AuditAction.COHORT_ACTIVATED: "An admin switched score normalisation on for a pack with a cohort.",
    AuditAction.COHORT_DEACTIVATED: "An admin switched a pack's score normalisation off (raw scores).",
    AuditAction.STORAGE_ORPHANS_REMOVED: "Image files that no row names (left by a crash) were removed: counts.",
    AuditAction.AUDIT_EXPORTED: "Someone exported audit events as CSV: filters and row count.",
    AuditAction.QUEUE_VIEWED: "Someone viewed their review queue: how many waiting, disputed and recent items.",
    AuditAction.NOTIFICATIONS_VIEWED: "Someone viewed their notifications: how many, how many unread.",
    AuditAction.NOTIFICATION_READ: "Someone marked their notifications read: which.",
    AuditAction.SEARCH_KEEP_SEARCHING_STARTED: "An investigator asked for a search to be re-run on new enrolments.",
    AuditAction.SEARCH_KEEP_SEARCHING_STOPPED: "Re-searching stopped: by a person, case closed or match released.",
    AuditAction.SEARCH_RESEARCHED: "A kept search was re-run on new enrolments: templates compared, new candidates.",
    AuditAction.CASE_NOTE_ADDED: "A note was added to a case: its text.",
    AuditAction.CASE_NOTE_EDITED: "A case note was edited: the new version's text (earlier versions are kept).",
}
