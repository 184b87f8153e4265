"""Cases and everything under them: probes, faces, searches, candidates, decisions.

Who may see a case is held by django-guardian object permissions (see cases.permissions); teams live in accounts.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from accounts.models import Team


class Case(models.Model):
    class Purpose(models.TextChoices):
        SUSPECT = "suspect", "Suspect"
        MISSING = "missing_person", "Missing person"
        DECEASED = "deceased_person", "Deceased person"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    reference = models.CharField(max_length=64, help_text="Crime or incident reference.")
    title = models.CharField(max_length=200)
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    offence_category = models.CharField(max_length=120, blank=True)
    legal_basis = models.TextField(help_text="The lawful basis for searching images in this case.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_cases")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("search_case", "Can run searches in the case")]
        # One case per reference, whatever the letter case (cases.lifecycle.case_create refuses in words first).
        constraints = [models.UniqueConstraint(Lower("reference"), name="case_unique_reference")]

    def __str__(self) -> str:
        return f"{self.reference} — {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


# --- Workbench: probes, faces, searches, candidates and decisions ------------------------------------------
# Gallery-side identifiers on Candidate are plain integers plus a text snapshot, not foreign keys: a candidate
# list is a record of what a search returned, and must stay readable (and disclosable) after a gallery image
# is deleted on application; the biometric itself goes with the gallery row, and the subject reference is
# blanked with the candidate marked removed (the audit trail keeps the record of the deletion).

POSSIBLE_MATCH_WORDING = "possible match — intelligence only, not an identification"


def probe_original_path(instance: Probe, filename: str) -> str:
    # The name is ours, not the uploader's: the original name is kept in a field, never used as a path.
    suffix = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}.get(
        instance.image_format, "bin"
    )
    return f"probes/case-{instance.case_id}/{instance.sha256[:2]}/{instance.sha256}.{suffix}"


def probe_face_crop_path(instance: ProbeFace, filename: str) -> str:
    return f"probes/case-{instance.probe.case_id}/faces/probe-{instance.probe_id}-face-{instance.index}.png"


class Probe(models.Model):
    """An image brought into a case to be searched. The original file is kept byte for byte."""

    class Source(models.TextChoices):
        CCTV = "cctv", "CCTV"
        CRIME_SCENE = "crime_scene", "Crime scene"
        PUBLIC = "public_submission", "Public submission"
        SOCIAL_MEDIA = "social_media", "Social media"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="probes")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=32, choices=Source.choices)
    description = models.TextField(blank=True)
    captured_at = models.DateTimeField(null=True, blank=True, help_text="When the image was taken, if known.")
    lawfully_held = models.BooleanField(help_text="The uploader stated that the image is lawfully held.")
    original = models.FileField(upload_to=probe_original_path, max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    image_format = models.CharField(max_length=16, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0 to 100 while processing.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    pack_key = models.CharField(max_length=128, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When the work last showed life: queued, or a worker's progress step; empty when queueing failed. The
    # housekeeping re-queue task (cases.housekeeping) sends work again that has shown none for too long.
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    requeues = models.PositiveSmallIntegerField(default=0, help_text="Times re-queued by housekeeping.")
    # A derived probe (enhancement on the record, cases.enhancement): the probe it was made from, and the
    # derivation: the parent's sha256, the ordered operations with every parameter, the library versions,
    # who made it and when. The parent is never changed; it cannot be deleted while derived images exist
    # (RESTRICT: retention deletes a case's probes together).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="derived", help_text="Made from."
    )
    derivation = models.JSONField(null=True, blank=True, help_text="How a derived image was made.")
    # A still taken from a video in the case (cases.video): a grabbed frame, or the best shot behind a track
    # search. `video_source` records the video's sha256, the time code and frame, and for a track the shots
    # and time codes fused. The video cannot be deleted while stills made from it exist.
    video = models.ForeignKey(
        "cases.Video", null=True, blank=True, on_delete=models.RESTRICT, related_name="stills", help_text="Taken from."
    )
    video_source = models.JSONField(null=True, blank=True, help_text="Where in the video the still comes from.")

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"Probe {self.pk} in case {self.case_id}"

    @property
    def no_face_found(self) -> bool:
        return self.status == self.Status.DONE and not self.faces.exists()


class ProbeFace(models.Model):
    """One face in a probe, found by the detector, inside a box a person drew, or made from five landmarks a
    person marked by hand (`manual`: `landmarks` are the points as placed, `drawn_by` who placed them)."""

    class Origin(models.TextChoices):
        DETECTED = "detected", "Found by the detector"
        DRAWN = "drawn", "Found inside a box drawn by a person"
        MANUAL = "manual", "Landmarks marked by hand by a person"
        # A video track's fused template (cases.video): the quality-weighted mean of its best shots' templates.
        TRACK = "track", "Fused from the best shots of a video track"

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="faces")
    index = models.PositiveIntegerField(help_text="1-based number shown on the image.")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.DETECTED)
    drawn_box = models.JSONField(null=True, blank=True, help_text="The box the person drew, if any.")
    drawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who drew the box or marked the landmarks by hand.",
    )
    box = models.JSONField(help_text="[x, y, width, height] in original-image pixels.")
    landmarks = models.JSONField(help_text="Five [x, y] points: eyes, nose, mouth corners.")
    detector_score = models.FloatField()
    quality = models.JSONField(default=dict)
    template = models.BinaryField(help_text="float32 unit vector; compared only with the same pack_key.")
    pack_key = models.CharField(max_length=128)
    aligned_crop = models.FileField(upload_to=probe_face_crop_path, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["probe_id", "index"]
        constraints = [models.UniqueConstraint(fields=["probe", "index"], name="probeface_unique_index")]

    def __str__(self) -> str:
        return f"Face {self.index} of probe {self.probe_id}"

    @property
    def warnings(self) -> list[str]:
        return list(self.quality.get("warnings", []))

    @property
    def manually_marked(self) -> bool:
        return self.origin == self.Origin.MANUAL

    @property
    def uncertain(self) -> bool:
        """Tiny and low-scored: probably not a face (faceengine.quality); listed after the others."""
        return "uncertain" in self.warnings


class Search(models.Model):
    """One search of one probe face against chosen galleries; who, when, why and with which settings."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to run"
        PROCESSING = "processing", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class ThresholdSource(models.TextChoices):
        SETTING = "setting", "Site default"
        GALLERY = "gallery", "Gallery default"
        USER = "user", "Chosen by the investigator"
        SYSTEM = "system", "System default for the pack"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="searches")
    face = models.ForeignKey(ProbeFace, on_delete=models.PROTECT, related_name="searches")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    galleries = models.JSONField(default=list, help_text="[{id, name}] searched, as they were named then.")
    top_k = models.PositiveIntegerField(default=50)
    threshold = models.FloatField()
    threshold_source = models.CharField(max_length=16, choices=ThresholdSource.choices)
    justification = models.TextField()
    small_face_reason = models.TextField(blank=True)
    pack_key = models.CharField(max_length=128)
    # The stored evaluation the search relied on for its threshold and its scores' meaning (search.accuracy);
    # empty when the pack had none.
    evaluation_run = models.ForeignKey(
        "search.EvaluationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # "raw" (cosine scores), or "cohort:<pk>": candidates' scores were normalised against that score cohort
    # (search.cohorts) and the threshold is on that scale.
    score_normalisation = models.CharField(max_length=64, default="raw")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # As on Probe: when the work last showed life (queued, or a worker's step); empty when queueing failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    requeues = models.PositiveSmallIntegerField(default=0, help_text="Times re-queued by housekeeping.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Search {self.pk} in case {self.case_id}"

    @property
    def gallery_ids(self) -> list[int]:
        return [int(g["id"]) for g in self.galleries]


class Candidate(models.Model):
    """One ranked gallery face returned by a search. Never an identification."""

    class Outcome(models.TextChoices):
        UNREVIEWED = "unreviewed", "Not yet reviewed"
        POSSIBLE_MATCH = "possible_match", "Possible match — awaiting second review"
        RELEASED = "released", "Possible match — agreed by a second reviewer"
        DISPUTED = "disputed", "The two assessments disagree — not released"
        NOT_A_MATCH = "not_a_match", "Not a match"
        INCONCLUSIVE = "inconclusive", "Inconclusive"
        # A supervisor's or designated reviewer's own first assessment, whatever its verdict: it never ends
        # review alone, and the label does not tell the next person what it was (cases.review).
        AWAITING_REVIEW = "awaiting_review", "Assessed once — awaiting an independent second assessment"

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="candidates")
    rank = models.PositiveIntegerField()
    score = models.FloatField()
    gallery_id = models.BigIntegerField()
    gallery_name = models.CharField(max_length=200)
    subject_id = models.BigIntegerField()
    subject_ref = models.CharField(max_length=200)

    class Removal(models.TextChoices):
        REQUEST = "request", "deleted on request"
        RETENTION = "retention", "deleted under the gallery's retention rule"

    template_id = models.BigIntegerField(db_index=True)
    image_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.UNREVIEWED)
    # Set, with subject_ref blanked, in the transaction that removes the gallery entry (cases.signals): the
    # candidate stays in the case history at its rank, marked removed, and takes no further decision.
    subject_removed_at = models.DateTimeField(null=True, blank=True)
    subject_removal = models.CharField(max_length=16, choices=Removal.choices, blank=True)
    # Added by a re-search (cases.research): the run that found it, and since when it is new (the previous run).
    found_by_run = models.ForeignKey(
        "SearchRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="candidates"
    )
    new_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["search_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["search", "rank"], name="candidate_unique_rank")]

    def __str__(self) -> str:
        return f"Candidate {self.rank} of search {self.search_id}"

    @property
    def released(self) -> bool:
        return self.outcome == self.Outcome.RELEASED

    @property
    def subject_removed(self) -> bool:
        return self.subject_removed_at is not None


class Decision(models.Model):
    """A person's assessment of a candidate. The first is the operator's; the second an independent review."""

    class Verdict(models.TextChoices):
        POSSIBLE_MATCH = "possible_match", "Possible match"
        NOT_A_MATCH = "not_a_match", "Not a match"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    class Stage(models.TextChoices):
        FIRST = "first", "First assessment"
        SECOND = "second", "Second, independent review"

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    stage = models.CharField(max_length=8, choices=Stage.choices)
    decision = models.CharField(max_length=20, choices=Verdict.choices)
    rationale = models.TextField()
    # The feature checklist beside the rationale: {feature key: assessment} (cases/features.py); may be empty.
    features = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["candidate_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["candidate", "reviewer"], name="decision_one_per_reviewer"),
            models.UniqueConstraint(fields=["candidate", "stage"], name="decision_one_per_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} on candidate {self.candidate_id} by {self.reviewer_id}"


# --- Review queue, notifications, re-search and case notes (issue 13) --------------------------------------


class SearchRun(models.Model):
    """One re-run of a search kept searching (cases.research): only the templates enrolled since its last run,
    with how many new candidates it added. The first run is the search itself (Search.started_at)."""

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField(help_text="2 for the first re-run (the search itself is run 1).")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    # The templates this run compared: ids above the previous run's mark, up to and including this one.
    templates_after = models.BigIntegerField(help_text="Highest template id already compared before this run.")
    templates_up_to = models.BigIntegerField(help_text="Highest template id compared by this run.")
    templates_compared = models.PositiveIntegerField(default=0)
    new_candidates = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["search_id", "number"]
        constraints = [models.UniqueConstraint(fields=["search", "number"], name="searchrun_unique_number")]

    def __str__(self) -> str:
        return f"Run {self.number} of search {self.search_id}"


class SearchWatch(models.Model):
    """ "Keep searching": a search re-run against new enrolments of its galleries until the case closes, a
    possible match is released, or a person stops it (cases.research)."""

    class Stop(models.TextChoices):
        PERSON = "person", "Stopped by a person"
        CASE_CLOSED = "case_closed", "The case was closed"
        RELEASED = "released", "A possible match was released"

    search = models.OneToOneField(Search, on_delete=models.CASCADE, related_name="watch")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    # The mark below which every template of the search's galleries has been compared (template ids grow).
    templates_up_to = models.BigIntegerField(default=0)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=16, choices=Stop.choices, blank=True)

    def __str__(self) -> str:
        return f"Keep searching: search {self.search_id}"

    @property
    def active(self) -> bool:
        return self.stopped_at is None


class Notification(models.Model):
    """An in-app message to one person, made in the transaction of the event that causes it
    (cases.notifications). Shown only while its case is still visible to its recipient."""

    class Kind(models.TextChoices):
        REVIEW_WAITING = "review_waiting", "A second review is waiting"
        RELEASED = "released", "A possible match was released"
        DISPUTED = "disputed", "Two assessments disagree"
        RESEARCH_FOUND = "research_found", "Re-search found new candidates"

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"Notification {self.pk} to {self.recipient_id}"


class CaseNote(models.Model):
    """A note on a case. Append-only: an edit is a new version that names the one it replaces, so the history
    stays (cases.notes); the current version of a note is the one nothing replaces."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Note {self.pk} (v{self.version}) on case {self.case_id}"


# --- Video evidence (cases.video) -------------------------------------------------------------------------
# Footage comes into a case like a probe image (same provenance and lawful-holding record, the original kept
# byte for byte with its sha256). Processing stores every sampled frame's faces (VideoFace, unique per frame
# and face so a resumed run never duplicates), then tracks (VideoTrack) built from them with their best shots
# (TrackShot) and proposed merges (TrackMerge) a person confirms or rejects. A track is searched through a
# still probe holding its fused template (Probe.video, ProbeFace.Origin.TRACK), so search, review, report
# and audit are those of any probe.


def video_original_path(instance: Video, filename: str) -> str:
    return f"videos/case-{instance.case_id}/{instance.sha256[:2]}/{instance.sha256}.{instance.extension}"


def track_shot_crop_path(instance: TrackShot, filename: str) -> str:
    track = instance.track
    return f"videos/case-{track.video.case_id}/video-{track.video_id}/track-{track.number}-shot-{instance.rank}.jpg"


class Video(models.Model):
    """Footage brought into a case to find, track and search faces in. The original file is kept byte for byte."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="videos")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=32, choices=Probe.Source.choices)
    description = models.TextField(blank=True)
    captured_at = models.DateTimeField(null=True, blank=True, help_text="When the footage starts, if known.")
    lawfully_held = models.BooleanField(help_text="The uploader stated that the footage is lawfully held.")
    original = models.FileField(upload_to=video_original_path, max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    container = models.CharField(max_length=64, blank=True)
    codec = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    fps = models.FloatField(default=0.0)
    duration_s = models.FloatField(default=0.0)
    frame_count = models.PositiveIntegerField(default=0, help_text="Frames in the video (estimated if unstated).")
    sample_fps = models.FloatField(null=True, blank=True, help_text="Frames analysed per second; empty: all.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    frames_total = models.PositiveIntegerField(default=0, help_text="Sampled frames to analyse.")
    frames_done = models.PositiveIntegerField(default=0, help_text="Sampled frames analysed and stored.")
    # The last frame whose faces are stored: a resumed run continues after it (-1: none yet).
    last_frame_index = models.IntegerField(default=-1)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    pack_key = models.CharField(max_length=128, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    requeues = models.PositiveSmallIntegerField(default=0, help_text="Times re-queued by housekeeping.")

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"Video {self.pk} in case {self.case_id}"

    @property
    def extension(self) -> str:
        # The name is ours, not the uploader's: the container's usual extension, never the uploaded name.
        name = (self.original_name.rsplit(".", 1)[-1] if "." in self.original_name else "").lower()
        return name if name in {"mp4", "mov", "avi", "mkv", "ts", "dav", "webm", "m4v"} else "bin"

    @property
    def progress(self) -> int:
        """0 to 100: sampled frames done out of the total, short of 100 until tracks are stored."""
        if self.status == self.Status.DONE:
            return 100
        if not self.frames_total:
            return 0
        return min(99, int(100 * self.frames_done / self.frames_total))


class VideoFace(models.Model):
    """One face found in one sampled frame. Unique per (video, frame, face): a resumed run never duplicates."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="faces")
    frame_index = models.PositiveIntegerField(help_text="Decoded video frames counted from 0.")
    time_s = models.FloatField(help_text="Seconds from the first video frame.")
    face_index = models.PositiveSmallIntegerField(help_text="0-based within the frame.")
    box = models.JSONField(help_text="[x, y, width, height] in frame pixels.")
    landmarks = models.JSONField()
    detector_score = models.FloatField()
    quality = models.JSONField(default=dict)
    # Empty for a face the engine followed without embedding it (faceengine.video: a followed face is embedded
    # when first seen, about once a second, and when it is a better shot); tracks link it by overlap.
    template = models.BinaryField(null=True, help_text="float32 unit vector; compared only with the same pack_key.")
    pack_key = models.CharField(max_length=128)
    shot = models.PositiveIntegerField(default=0, help_text="Edited footage: the shot (0, +1 at each cut).")
    # The aligned 112x112 crop as JPEG: small enough to keep for every face, so best shots need no re-decode.
    crop = models.BinaryField()

    class Meta:
        ordering = ["video_id", "frame_index", "face_index"]
        constraints = [
            models.UniqueConstraint(fields=["video", "frame_index", "face_index"], name="videoface_unique_frame_face")
        ]

    def __str__(self) -> str:
        return f"Face {self.face_index} of frame {self.frame_index} of video {self.video_id}"


class VideoTrack(models.Model):
    """One person followed across frames (box overlap and template similarity), numbered from 1 in time order."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="tracks")
    number = models.PositiveIntegerField()
    first_frame = models.PositiveIntegerField()
    last_frame = models.PositiveIntegerField()
    first_time_s = models.FloatField()
    last_time_s = models.FloatField()
    face_count = models.PositiveIntegerField()
    faces = models.ManyToManyField(VideoFace, related_name="tracks", blank=True)
    # A person confirmed that this track is the same person as `merged_into` (TrackMerge): searching the
    # latter fuses the best shots of both.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged")
    # The still probe face holding this track's fused template, made at its first search and reused while
    # its shots stay the same (cleared when a merge changes them).
    search_face = models.ForeignKey(
        ProbeFace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Searched as."
    )

    class Meta:
        ordering = ["video_id", "number"]
        constraints = [models.UniqueConstraint(fields=["video", "number"], name="videotrack_unique_number")]

    def __str__(self) -> str:
        return f"Track {self.number} of video {self.video_id}"


class TrackShot(models.Model):
    """One of a track's best shots by quality, with its time code and aligned crop."""

    track = models.ForeignKey(VideoTrack, on_delete=models.CASCADE, related_name="shots")
    face = models.ForeignKey(VideoFace, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField(help_text="1 is the best.")
    quality_score = models.FloatField()
    aligned_crop = models.FileField(upload_to=track_shot_crop_path, max_length=255)

    class Meta:
        ordering = ["track_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["track", "rank"], name="trackshot_unique_rank")]

    def __str__(self) -> str:
        return f"Shot {self.rank} of track {self.track_id}"


class TrackMerge(models.Model):
    """Two tracks that may be the same person (similar templates, apart in time). Proposed by rfr; a person
    confirms or rejects it."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        CONFIRMED = "confirmed", "Confirmed by a person"
        REJECTED = "rejected", "Rejected by a person"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="merges")
    first = models.ForeignKey(VideoTrack, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(VideoTrack, on_delete=models.CASCADE, related_name="+")
    similarity = models.FloatField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["video_id", "-similarity", "id"]
        constraints = [models.UniqueConstraint(fields=["first", "second"], name="trackmerge_unique_pair")]

    def __str__(self) -> str:
        return f"Proposed merge of tracks {self.first_id} and {self.second_id}"
