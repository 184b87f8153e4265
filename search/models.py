"""Galleries of lawfully held images, their subjects and face templates, and the bookkeeping of the index.

The database is the truth; the FAISS index (search.index) is derived from Template rows and can always be
rebuilt from them. Every change to a gallery's templates bumps `IndexState.version` and writes an
`IndexChange` row in the same transaction, so any process can bring its in-memory index up to date by
applying the changes after the version it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import Storage
from django.db import models

from rfr.errors import Forbidden
from rfr.storage import named_storage

# -- removal guard --------------------------------------------------------------------------------------------
# Gallery rows hold biometrics. Removing them must record a reason, write the audit event, mark the candidates
# that point at them and erase the index files, which search.galleries does; so a delete anywhere else (the
# Django admin, a shell, a script) is refused. search.galleries permits it for the length of its own removal.
# Raw SQL is not guarded: the database owner can always delete, and the audit trail then shows no removal.
_REMOVAL_PERMITTED: ContextVar[bool] = ContextVar("rfr_gallery_removal_permitted", default=False)
REMOVAL_REFUSED_MESSAGE = (
    "Gallery subjects, images and templates are removed only with a reason, through the gallery removal"
    " services (search.galleries: subject_delete, gallery_image_delete, gallery_purge_expired; `manage.py"
    " gallery remove-subject --reason`), which audit the removal and erase the index files."
)


@contextmanager
def gallery_removal_permitted() -> Iterator[None]:
    """Deleting gallery rows is allowed inside this block only (search.galleries; benchmark tear-down)."""
    token = _REMOVAL_PERMITTED.set(True)
    try:
        yield
    finally:
        _REMOVAL_PERMITTED.reset(token)


def removal_guard() -> None:
    if not _REMOVAL_PERMITTED.get():
        raise Forbidden("removal_outside_services", REMOVAL_REFUSED_MESSAGE)


class GuardedQuerySet(models.QuerySet):
    """A queryset whose delete() is refused outside gallery_removal_permitted()."""

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.model is Gallery:
            # An empty gallery holds no biometric; one with subjects goes subject by subject, each audited.
            if Subject.objects.filter(gallery__in=self).exists():
                removal_guard()
        else:
            removal_guard()
        return super().delete()


class GuardedModel(models.Model):
    """Model.delete() refused outside gallery_removal_permitted() (cascades from a guarded delete go through)."""

    objects = GuardedQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if not isinstance(self, Gallery) or Subject.objects.filter(gallery=self).exists():
            removal_guard()
        return super().delete(*args, **kwargs)


class Gallery(GuardedModel):
    class Kind(models.TextChoices):
        CUSTODY = "custody", "Custody images"
        WATCHLIST = "watchlist", "Watchlist"
        MISSING = "missing_persons", "Missing persons"

    class IndexMode(models.TextChoices):
        EXACT = "exact", "Exact (flat inner product)"
        APPROXIMATE = "approximate", "Approximate (PQ fast scan with exact re-rank)"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    description = models.TextField(blank=True)
    provenance = models.TextField(
        blank=True, help_text="Where the images come from and under what authority they are held."
    )
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images older than this many days are purged; empty keeps them."
    )
    index_mode = models.CharField(max_length=16, choices=IndexMode.choices, default=IndexMode.EXACT)
    created_at = models.DateTimeField(auto_now_add=True)
    # The gallery's own default score threshold, for the pack it was set for (search.thresholds); empty: the
    # pack's system default applies.
    default_threshold = models.FloatField(null=True, blank=True)
    default_threshold_pack_key = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "galleries"

    def __str__(self) -> str:
        return self.name


class Subject(GuardedModel):
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="subjects")
    external_ref = models.CharField(max_length=120, help_text="Custody or PNC reference.")
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gallery", "external_ref"]
        constraints = [
            models.UniqueConstraint(fields=["gallery", "external_ref"], name="subject_unique_ref_per_gallery")
        ]

    def __str__(self) -> str:
        return f"{self.external_ref} ({self.gallery})"


def gallery_image_path(instance: GalleryImage, filename: str) -> str:
    # Named by content hash so a resumed enrolment rewrites the same path rather than leaving a copy.
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"galleries/{instance.gallery_id}/{instance.sha256[:2]}/{instance.sha256}.{suffix[:8]}"


def gallery_storage() -> Storage:
    # The "gallery" entry of STORAGES (rfr.objectstore): local folder or object store. It overwrites rather
    # than renames: the same content hash is the same image, written again on a resume. A rolled-back write
    # removes the file only if no committed row names it (rfr.storage, search.enrolment).
    return named_storage("gallery")


class GalleryImage(GuardedModel):
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="images")
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=gallery_image_path, storage=gallery_storage, max_length=255)
    sha256 = models.CharField(max_length=64)
    original_filename = models.CharField(max_length=255, blank=True)
    provenance = models.TextField(blank=True)
    captured_at = models.DateField(null=True, blank=True)
    enrolled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["gallery", "sha256"], name="image_unique_sha_per_gallery")]

    def __str__(self) -> str:
        return self.original_filename or self.sha256[:12]


class Template(GuardedModel):
    """One face on a gallery image. Templates of different model packs are never compared."""

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="templates")
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="templates")
    image = models.ForeignKey(GalleryImage, on_delete=models.CASCADE, related_name="templates")
    pack_key = models.CharField(max_length=120, db_index=True)
    box = models.JSONField(help_text="[x, y, w, h] in image pixels.")
    landmarks = models.JSONField(help_text="Five [x, y] points.")
    quality = models.JSONField(default=dict, blank=True)
    embedding = models.BinaryField(help_text="float32 little-endian, unit length.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["gallery", "pack_key"])]

    def __str__(self) -> str:
        return f"template {self.pk} ({self.pack_key})"

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype="<f4").astype(np.float32)


class IndexState(models.Model):
    """The version of one gallery's templates for one pack; bumped with every add or remove."""

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="index_states")
    pack_key = models.CharField(max_length=120)
    version = models.PositiveBigIntegerField(default=0)
    # A new epoch means "start again from the database" (full rebuild, or a fresh database reusing ids).
    epoch = models.UUIDField(default=uuid.uuid4)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gallery", "pack_key"], name="index_state_unique")]

    def __str__(self) -> str:
        return f"{self.gallery_id}/{self.pack_key} v{self.version}"


class IndexChange(models.Model):
    """One add or remove of a template id at a version; lets a process catch up without a rebuild.

    Holds ids only, never embeddings; rows older than the newest snapshot on disk may be pruned.
    """

    class Op(models.TextChoices):
        ADD = "add", "add"
        REMOVE = "remove", "remove"

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="+")
    pack_key = models.CharField(max_length=120)
    version = models.PositiveBigIntegerField()
    template_id = models.BigIntegerField()
    op = models.CharField(max_length=8, choices=Op.choices)

    class Meta:
        ordering = ["version"]
        indexes = [models.Index(fields=["gallery", "pack_key", "version"])]

    def __str__(self) -> str:
        return f"{self.op} {self.template_id} @ v{self.version}"


class EnrolmentRun(models.Model):
    """One bulk enrolment; its items are the work list, so a crashed run can be seen and resumed."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        # Its command or job died (no heartbeat); running it again resumes with the pending items.
        INTERRUPTED = "interrupted", "Interrupted"

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="enrolment_runs")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched while the run is being worked through; housekeeping marks a running run without one for
    # RFR_ENROLMENT_RUN_DEAD_SECONDS interrupted.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Where its items' copies live in the "enrolment" storage (search.enrolment_storage): a folder of its own,
    # so that any worker on any machine reads any item, and the copies go in one sweep when the run ends.
    staging_key = models.CharField(max_length=64, blank=True)
    # A server folder whose files are still to be copied in (empty for an upload, already in storage), and
    # when that copy finished: the first process to work on the run makes it, on the machine that sees the
    # folder.
    import_folder = models.CharField(max_length=1000, blank=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"enrolment {self.pk} into {self.gallery_id} ({self.status})"


class EnrolmentItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ENROLLED = "enrolled", "Enrolled"
        SKIPPED = "skipped", "Already enrolled"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(EnrolmentRun, on_delete=models.CASCADE, related_name="items")
    # The file as the CSV names it, relative to the run's folder (search.enrolment_storage names its copy).
    path = models.CharField(max_length=1000)
    subject_ref = models.CharField(max_length=120)
    attributes = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    message = models.CharField(max_length=500, blank=True)
    image = models.ForeignKey(GalleryImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.path}: {self.status}"


class ActivePack(models.Model):
    """The model pack an administrator chose on the model-pack page; one row at most (pk 1).

    Overrides the RFR_MODEL_PACK setting while it exists (rfr.engine.active_pack_name), so a pack can be
    activated from the page, audited, without editing the deployment's environment.
    """

    SINGLETON_PK = 1

    name = models.CharField(max_length=200, help_text="The pack's folder under RFR_MODEL_PACK_DIR.")
    pack_key = models.CharField(max_length=120)
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    chosen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"active pack {self.name}"


class PackThreshold(models.Model):
    """The system default score threshold of one model pack, set by an administrator on the thresholds page
    (search.thresholds, audited with the evidence shown); RFR_DEFAULT_THRESHOLD applies to a pack without one."""

    pack_key = models.CharField(max_length=128, unique=True)
    threshold = models.FloatField()
    reason = models.TextField(blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    set_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"threshold {self.threshold:.3f} for {self.pack_key}"


class ReembedRun(models.Model):
    """One re-embedding of every gallery image with a model pack; resumable (images that already have a
    template of the pack are skipped), its progress read by the model-pack page."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    pack_name = models.CharField(max_length=200)
    pack_key = models.CharField(max_length=120)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    embedded = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Per-image failures (image id and message, never a path or a subject reference), the first few hundred.
    errors = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"re-embed {self.pk} with {self.pack_key} ({self.status})"


class EvaluationRun(models.Model):
    """One accuracy measurement of a model pack on a labelled data set, stored with its figures and curves.

    Written by `manage.py evaluate … --store` or by a run an admin queues on a server-readable folder
    (search.evaluations). `figures` is exactly the command's --json object; `curves` holds, per group, the
    false-match and false-non-match rates on a fine grid of thresholds, so the error rate of any score can be
    read back (the accuracy page, thresholds, a candidate's score meaning).
    """

    class Kind(models.TextChoices):
        VERIFICATION = "verification", "Verification (1:1 pairs)"
        IDENTIFICATION = "identification", "Identification (1:N search)"
        DEMOGRAPHICS = "demographics", "Demographic differentials"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    pack_key = models.CharField(max_length=128, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    dataset_name = models.CharField(max_length=200)
    # Research data (e.g. UTKFace, LFW) is labelled as such wherever a run is shown.
    dataset_is_research = models.BooleanField(default=True)
    labels_sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="The labels file or folder as given.")
    # "raw", or "cohort:<cohort pk>" when scores were normalised against a reference cohort.
    normalisation = models.CharField(max_length=64, default="raw")
    run_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    figures = models.JSONField(default=dict, blank=True)
    # {"overall": [[threshold, fmr, fnmr|null], ...], "<attribute>=<value>": [...], ...}
    curves = models.JSONField(default=dict, blank=True)
    # What the queued run reads (images folder, labels/pairs file, options); empty for command-line runs.
    parameters = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["pack_key", "kind", "status", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} evaluation {self.pk} of {self.pack_key} on {self.dataset_name} ({self.status})"


class ScoreCohort(models.Model):
    """A reference cohort of face templates that search and evaluation scores are normalised against (S-norm
    family, faceengine.normalisation), versioned per model pack; at most one is active per pack.

    Built by an admin from a labelled folder (search.cohorts.score_cohort_build): the labels are used only to
    choose its members (an equal number per value of `balanced_by`) and to show its make-up (`composition`);
    they are never read at search time. `threshold` is the operating threshold on the normalised scale: the
    value at which the building set's different-face comparisons have the same false-match rate as the raw
    operating threshold `raw_threshold` had.
    """

    pack_key = models.CharField(max_length=128, db_index=True)
    version = models.PositiveIntegerField(help_text="1, 2, … per pack, in the order built.")
    name = models.CharField(max_length=200)
    method = models.CharField(max_length=16, default="csls")
    top_k = models.PositiveIntegerField(default=10)
    size = models.PositiveIntegerField()
    dimension = models.PositiveIntegerField()
    templates = models.BinaryField(help_text="size × dimension float32 little-endian, unit rows.")
    balanced_by = models.CharField(max_length=64, blank=True, help_text="The label column members were balanced on.")
    # {"<column>": {"<value>": count, ...}, ...} over the members, for every label column given.
    composition = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="The labels file and images folder as given.")
    labels_sha256 = models.CharField(max_length=64, blank=True)
    raw_threshold = models.FloatField(help_text="The raw operating threshold the calibration matched.")
    threshold = models.FloatField(help_text="The operating threshold on the normalised scale.")
    calibration = models.JSONField(default=dict, blank=True, help_text="How `threshold` was set: pairs, FMR.")
    active = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pack_key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["pack_key", "version"], name="score_cohort_version_unique"),
            models.UniqueConstraint(
                fields=["pack_key"], condition=models.Q(active=True), name="score_cohort_one_active_per_pack"
            ),
        ]

    def __str__(self) -> str:
        return f"Cohort {self.name} v{self.version} ({self.pack_key})"

    @property
    def normalisation_label(self) -> str:
        """The value recorded on searches and evaluation runs that used this cohort."""
        return f"cohort:{self.pk}"

    @property
    def calibration_fmr_text(self) -> str:
        fmr = self.calibration.get("fmr")
        return "—" if fmr is None else f"{100 * float(fmr):.2f}%"

    def matrix(self) -> np.ndarray:
        return np.frombuffer(bytes(self.templates), dtype="<f4").reshape(self.size, self.dimension)
