"""Enrolment: gallery images in, one face template out per image (decode → detect → align → embed).

One image at a time (`gallery_image_enrol`, for small uploads and the admin), or in bulk from a CSV of
files (`enrolment_run_create` then `enrolment_run_execute`): a run's work items are kept in the database,
processed in batches in this process or on the inference queue's workers, each image committing on its own
with its template and index change, so a run that dies resumes where it stopped with identical templates.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from tqdm import tqdm

from audit.actions import AuditAction
from audit.services import audit_event_record
from faceengine import AnalysedFace, FaceEngine, ImageRejected, decode_image
from faceengine.engine import primary_face_index
from rfr.engine import active_engine, image_limits
from rfr.errors import InvalidInput
from rfr.queues import TaskName, task_enqueue, task_enqueue_on_commit
from rfr.storage import atomic_with_files, stored_file_save
from search.enrolment_storage import (
    enrolment_item_name,
    enrolment_run_copies_delete,
    enrolment_run_import,
    enrolment_storage,
    staging_key_new,
)
from search.index.changes import index_changes_record
from search.index.live import index_pack_keys
from search.models import EnrolmentItem, EnrolmentRun, Gallery, GalleryImage, IndexChange, Subject, Template

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None
# A second face must be at most this fraction of the primary face's area for the primary to "dominate".
SECONDARY_FACE_MAX_AREA_RATIO = 0.4
ENROL_BATCH_SIZE = 16
STALL_WARNING_SECONDS = 120
SUBJECT_COLUMNS = ("subject_ref", "identity")


class EnrolmentError(InvalidInput):
    """An image that cannot be enrolled, with a message fit to show the person who supplied it."""

    def __init__(self, message: str, code: str = "image_not_enrollable") -> None:
        super().__init__(code, message)


# -- enrolment of one image ---------------------------------------------------------------------------------
def enrolment_face_choose(faces: Sequence[AnalysedFace], image_shape: tuple[int, ...]) -> AnalysedFace:
    """The one face to enrol from a single-subject photo, or EnrolmentError (no face / several faces)."""
    if not faces:
        raise EnrolmentError("no face found")
    if len(faces) == 1:
        return faces[0]
    primary = primary_face_index([face.detection for face in faces], image_shape)
    assert primary is not None
    area = faces[primary].box[2] * faces[primary].box[3]
    others = max(face.box[2] * face.box[3] for i, face in enumerate(faces) if i != primary)
    if others > SECONDARY_FACE_MAX_AREA_RATIO * area:
        raise EnrolmentError(f"several faces ({len(faces)}) and none clearly dominates")
    return faces[primary]


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    sha256: str
    face: AnalysedFace


def _decode(data: bytes) -> np.ndarray:
    try:
        return decode_image(data, image_limits())
    except ImageRejected as error:
        raise EnrolmentError(error.message) from error


def _commit_enrolment(
    *,
    gallery: Gallery,
    prepared: PreparedImage,
    pack_key: str,
    subject_ref: str,
    attributes: dict[str, Any],
    original_filename: str,
    provenance: str = "",
    captured_at: date | None = None,
    item: EnrolmentItem | None = None,
) -> GalleryImage | None:
    """Image, template, index change (and the work item's status) in one transaction; None if a duplicate."""
    try:
        with atomic_with_files():
            if GalleryImage.objects.filter(gallery=gallery, sha256=prepared.sha256).exists():
                return None
            subject, _ = Subject.objects.get_or_create(
                gallery=gallery, external_ref=subject_ref, defaults={"attributes": attributes}
            )
            image = GalleryImage(
                gallery=gallery,
                subject=subject,
                sha256=prepared.sha256,
                original_filename=original_filename[:255],
                provenance=provenance,
                captured_at=captured_at,
            )
            # Content-addressed and overwritten: on rollback, kept if a concurrent enrolment of the same
            # bytes committed it (the unique constraint makes ours wait for theirs, then fail).
            stored_file_save(
                image.file,
                original_filename or "image.jpg",
                ContentFile(prepared.data),
                still_named=lambda: GalleryImage.objects.filter(file=image.file.name).exists(),
            )
            image.save()
            face = prepared.face
            template = Template.objects.create(
                gallery=gallery,
                subject=subject,
                image=image,
                pack_key=pack_key,
                box=[round(float(v), 2) for v in face.box],
                landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
                quality=face.quality.to_dict(),
                embedding=np.asarray(face.template, dtype="<f4").tobytes(),
            )
            index_changes_record(gallery_id=gallery.pk, pack_key=pack_key, changes=[(template.pk, IndexChange.Op.ADD)])
            if item is not None:
                item.status = EnrolmentItem.Status.ENROLLED
                item.image = image
                item.message = ""
                item.save(update_fields=["status", "image", "message"])
            return image
    except IntegrityError:
        # Another worker enrolled the same bytes between our check and our insert.
        if GalleryImage.objects.filter(gallery=gallery, sha256=prepared.sha256).exists():
            return None
        raise


def gallery_image_enrol(
    *,
    gallery: Gallery,
    data: bytes,
    subject_ref: str,
    original_filename: str = "",
    attributes: dict[str, Any] | None = None,
    provenance: str = "",
    captured_at: date | None = None,
    actor: Actor = None,
    request: HttpRequest | None = None,
    engine: FaceEngine | None = None,
) -> GalleryImage | None:
    """Enrol one image (small uploads, the admin). None if already enrolled; EnrolmentError if unusable."""
    if not subject_ref.strip():
        raise EnrolmentError("a subject reference is required")
    engine = engine or active_engine()
    sha = hashlib.sha256(data).hexdigest()
    if GalleryImage.objects.filter(gallery=gallery, sha256=sha).exists():
        return None
    image = _decode(data)
    face = enrolment_face_choose(engine.analyse(image), image.shape)
    with atomic_with_files():
        enrolled = _commit_enrolment(
            gallery=gallery,
            prepared=PreparedImage(data=data, sha256=sha, face=face),
            pack_key=engine.pack.key,
            subject_ref=subject_ref.strip(),
            attributes=attributes or {},
            original_filename=original_filename,
            provenance=provenance,
            captured_at=captured_at,
        )
        if enrolled is not None:
            audit_event_record(
                action=AuditAction.GALLERY_ENROL,
                actor=actor,
                target=gallery,
                request=request,
                detail={"images": 1, "subject_ref": subject_ref, "gallery_image_id": enrolled.pk},
            )
    return enrolled


# -- bulk enrolment --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnrolmentEntry:
    path: str
    subject_ref: str
    attributes: dict[str, str]


def enrolment_entries_read(*, images_dir: Path, subjects_csv: Path) -> list[EnrolmentEntry]:
    """Rows of `file,subject_ref|identity[,extra columns]`; extra columns become subject attributes."""
    with open(subjects_csv, newline="", encoding="utf-8-sig") as handle:
        return enrolment_entries_parse(handle, name=str(subjects_csv))


def enrolment_entries_parse(handle: Iterable[str], *, name: str) -> list[EnrolmentEntry]:
    """The rows of a subjects CSV already open as text (a file on the server, or a member of an uploaded zip)."""
    reader = csv.DictReader(handle)
    columns = reader.fieldnames or []
    subject_column = next((c for c in SUBJECT_COLUMNS if c in columns), None)
    if "file" not in columns or subject_column is None:
        raise InvalidInput(
            "invalid_subjects_csv",
            f"{name}: needs a 'file' column and a 'subject_ref' or 'identity' column",
        )
    extra = [c for c in columns if c not in {"file", subject_column}]
    entries = []
    for row in reader:
        if not (row.get("file") or "").strip():
            continue
        entries.append(
            EnrolmentEntry(
                path=row["file"].strip(),
                subject_ref=(row.get(subject_column) or "").strip(),
                attributes={c: row.get(c) or "" for c in extra},
            )
        )
    return entries


def _item_state(entry: EnrolmentEntry) -> tuple[str, str, str]:
    """(path, status, message) of a CSV row's work item: its path normalised and relative to the run's folder.

    A row naming a file outside the images folder ("../../etc/passwd") is never read. Normalised rather than
    resolved, so a folder of symbolic links to the images still works.
    """
    raw = entry.path.replace("\\", "/")
    relative = os.path.normpath(raw)
    if PurePosixPath(raw).is_absolute() or relative == ".." or relative.startswith("../"):
        return raw[:1000], EnrolmentItem.Status.FAILED, "path is outside the images folder"
    if not entry.subject_ref:
        return relative[:1000], EnrolmentItem.Status.FAILED, "no subject reference in the CSV row"
    return relative[:1000], EnrolmentItem.Status.PENDING, ""


def enrolment_run_create(
    *,
    gallery: Gallery,
    images_dir: Path | None,
    entries: Iterable[EnrolmentEntry],
    actor: Actor = None,
    source: str = "",
    staging_key: str = "",
) -> EnrolmentRun:
    """A run and its work items. From a server folder (`images_dir`), its files are copied into storage by the
    first process that works on it (search.enrolment_storage); with `images_dir=None` the files are already in
    storage under `staging_key` (an uploaded zip)."""
    user: Any = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        run = EnrolmentRun.objects.create(
            gallery=gallery,
            actor=user,
            actor_name=getattr(user, "username", "") or "command line",
            source=source[:500],
            heartbeat_at=timezone.now(),
            staging_key=staging_key or staging_key_new(),
            import_folder=str(Path(images_dir).resolve()) if images_dir is not None else "",
            imported_at=None if images_dir is not None else timezone.now(),
        )
        items = []
        for entry in entries:
            path, status, message = _item_state(entry)
            items.append(
                EnrolmentItem(
                    run=run,
                    path=path,
                    subject_ref=entry.subject_ref[:120],
                    attributes=entry.attributes,
                    status=status,
                    message=message,
                )
            )
        EnrolmentItem.objects.bulk_create(items, batch_size=2000)
        audit_event_record(
            action=AuditAction.GALLERY_ENROL_START,
            actor=user,
            target=gallery,
            detail={"run_id": run.pk, "files": len(items), "source": source[:500], "by": run.actor_name},
        )
    return run


def _item_fail(item: EnrolmentItem, message: str) -> None:
    EnrolmentItem.objects.filter(pk=item.pk, status=EnrolmentItem.Status.PENDING).update(
        status=EnrolmentItem.Status.FAILED, message=message[:500]
    )


def _item_read(item: EnrolmentItem) -> bytes:
    """The item's bytes, from its copy in the enrolment storage (local folder or object store)."""
    if not item.subject_ref:
        raise EnrolmentError("no subject reference in the CSV row")
    storage = enrolment_storage()
    name = enrolment_item_name(item.run, item.path)
    try:
        # Opened first: a missing object is FileNotFoundError on every backend, and the size comes with it.
        with storage.open(name, "rb") as handle:
            if handle.size > settings.RFR_MAX_UPLOAD_BYTES:
                raise EnrolmentError("file is larger than the upload limit")
            return bytes(handle.read())
    except FileNotFoundError as error:
        raise EnrolmentError("file not found") from error
    except OSError as error:
        raise EnrolmentError(f"cannot read file: {error.strerror}") from error


def enrolment_items_process(*, item_ids: Sequence[int], engine: FaceEngine | None = None, finish: bool = False) -> None:
    """Enrol a batch of work items; each image commits on its own, so a crash loses at most the batch's
    uncommitted images, which the next run redoes. Items not pending (already done) are left alone.

    Any worker on any machine may take any batch: items are read from the enrolment storage. With `finish`
    (a batch on the queue, whose run no process waits on), the batch that leaves nothing pending finishes
    the run.
    """
    run_ids = set(EnrolmentItem.objects.filter(pk__in=item_ids).values_list("run_id", flat=True).distinct())
    _items_enrol(item_ids=item_ids, engine=engine)
    # The run shows life while any of its batches is worked on, wherever that is.
    EnrolmentRun.objects.filter(pk__in=run_ids).update(heartbeat_at=timezone.now())
    if finish:
        for run_id in run_ids:
            enrolment_run_finish_if_done(run_id=run_id)


def _items_enrol(*, item_ids: Sequence[int], engine: FaceEngine | None) -> None:
    items = list(
        EnrolmentItem.objects.filter(pk__in=item_ids, status=EnrolmentItem.Status.PENDING)
        .select_related("run__gallery")
        .order_by("pk")
    )
    if not items:
        return
    engine = engine or active_engine()
    decoded: list[tuple[EnrolmentItem, bytes, str, np.ndarray]] = []
    for item in items:
        try:
            data = _item_read(item)
            sha = hashlib.sha256(data).hexdigest()
            if GalleryImage.objects.filter(gallery_id=item.run.gallery_id, sha256=sha).exists():
                EnrolmentItem.objects.filter(pk=item.pk).update(status=EnrolmentItem.Status.SKIPPED)
                continue
            decoded.append((item, data, sha, _decode(data)))
        except EnrolmentError as error:
            _item_fail(item, str(error))
    if not decoded:
        return
    for item, data, sha, image in decoded:
        try:
            # One image at a time rather than analyse_many: batch composition can change the last bits of
            # an embedding, and a resumed run must give exactly the templates an uninterrupted one gives.
            face = enrolment_face_choose(engine.analyse(image), image.shape)
            enrolled = _commit_enrolment(
                gallery=item.run.gallery,
                prepared=PreparedImage(data=data, sha256=sha, face=face),
                pack_key=engine.pack.key,
                subject_ref=item.subject_ref,
                attributes=item.attributes,
                original_filename=PurePosixPath(item.path).name,
                provenance=item.run.source,
                item=item,
            )
            if enrolled is None:
                EnrolmentItem.objects.filter(pk=item.pk).update(status=EnrolmentItem.Status.SKIPPED)
        except EnrolmentError as error:
            _item_fail(item, str(error))


# How often a run being worked through records that it is alive (housekeeping marks a silent one interrupted).
HEARTBEAT_SECONDS = 10.0


class _Heartbeat:
    """Touches the run's heartbeat at most every HEARTBEAT_SECONDS while its command or job is alive."""

    def __init__(self, run: EnrolmentRun) -> None:
        self.run_id = run.pk
        self.last = 0.0

    def __call__(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= HEARTBEAT_SECONDS:
            EnrolmentRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
            self.last = time.monotonic()


def enrolment_runs_mark_interrupted(*, silent_seconds: float | None = None) -> list[int]:
    """Mark running runs whose command or job died (no heartbeat for RFR_ENROLMENT_RUN_DEAD_SECONDS)
    interrupted, each with its audit event. Running the run again (enrolment_run_execute) resumes it."""
    silent_seconds = settings.RFR_ENROLMENT_RUN_DEAD_SECONDS if silent_seconds is None else silent_seconds
    now = timezone.now()
    cutoff = now - timedelta(seconds=silent_seconds)
    marked: list[int] = []
    candidates = EnrolmentRun.objects.filter(status=EnrolmentRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    for run_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            run = EnrolmentRun.objects.select_for_update().select_related("gallery").filter(pk=run_id).first()
            last = None if run is None else (run.heartbeat_at or run.started_at)
            if run is None or run.status != EnrolmentRun.Status.RUNNING or last is None or last >= cutoff:
                continue  # finished, or showed life, since the query
            run.status = EnrolmentRun.Status.INTERRUPTED
            run.save(update_fields=["status"])
            audit_event_record(
                action=AuditAction.GALLERY_ENROL_INTERRUPTED,
                target=run.gallery,
                detail={
                    "run_id": run.pk,
                    "gallery": run.gallery.name,
                    "pending": run.items.filter(status=EnrolmentItem.Status.PENDING).count(),
                    "silent_seconds": int((now - last).total_seconds()),
                },
            )
            marked.append(run.pk)
    if marked:
        logger.warning("enrolment runs %s had no heartbeat for %s s: marked interrupted", marked, silent_seconds)
    return marked


def _enqueue_batches(batches: list[list[int]], *, finish: bool = False) -> None:
    for batch in batches:
        if finish:
            task_enqueue(TaskName.GALLERY_ENROL_BATCH, batch, True)
        else:
            task_enqueue(TaskName.GALLERY_ENROL_BATCH, batch)


def enrolment_run_pending_batches(*, run: EnrolmentRun, batch_size: int = ENROL_BATCH_SIZE) -> list[list[int]]:
    """The run's pending items in batches, after copying them into storage if the run has not yet."""
    enrolment_run_import(run=run)
    pending = list(run.items.filter(status=EnrolmentItem.Status.PENDING).order_by("pk").values_list("pk", flat=True))
    return [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]


def enrolment_run_fan_out(*, run: EnrolmentRun, batch_size: int = ENROL_BATCH_SIZE) -> int:
    """Queue every pending batch of the run for the inference workers, and return at once: the batch that
    leaves nothing pending finishes the run. Returns the batches queued."""
    batches = enrolment_run_pending_batches(run=run, batch_size=batch_size)
    EnrolmentRun.objects.filter(pk=run.pk).exclude(status=EnrolmentRun.Status.FINISHED).update(
        status=EnrolmentRun.Status.RUNNING, heartbeat_at=timezone.now()
    )
    if not batches:
        enrolment_run_finish_if_done(run_id=run.pk)
    _enqueue_batches(batches, finish=True)
    return len(batches)


def enrolment_run_execute(
    *,
    run: EnrolmentRun,
    batch_size: int = ENROL_BATCH_SIZE,
    in_process: bool | None = None,
    progress: bool = True,
    poll_seconds: float = 1.0,
    on_progress: Callable[[int], None] | None = None,
) -> EnrolmentRun:
    """Work through the run's pending items, in this process or on Celery workers, then audit the result."""
    batches = enrolment_run_pending_batches(run=run, batch_size=batch_size)
    pending = [pk for batch in batches for pk in batch]
    total = run.items.count()
    done_before = total - len(pending)
    eager = settings.CELERY_TASK_ALWAYS_EAGER if in_process is None else in_process
    # Running (again): an interrupted run resumes with its pending items, and shows life while it works.
    EnrolmentRun.objects.filter(pk=run.pk).exclude(status=EnrolmentRun.Status.FINISHED).update(
        status=EnrolmentRun.Status.RUNNING
    )
    heartbeat = _Heartbeat(run)
    heartbeat(force=True)
    bar = tqdm(
        total=total,
        initial=done_before,
        unit="img",
        desc=f"enrol {run.gallery.name}",
        file=sys.stderr,
        disable=not progress,
    )
    try:
        if eager:
            engine = active_engine()
            for batch in batches:
                enrolment_items_process(item_ids=batch, engine=engine)
                heartbeat()
                bar.update(len(batch))
                if on_progress is not None:
                    on_progress(bar.n)
        else:
            _enqueue_batches(batches)
            remaining = len(pending)
            last_progress = time.monotonic()
            warned = False
            while remaining:
                time.sleep(poll_seconds)
                heartbeat()
                now_remaining = run.items.filter(status=EnrolmentItem.Status.PENDING).count()
                if now_remaining < remaining:
                    last_progress = time.monotonic()
                elif not warned and time.monotonic() - last_progress > STALL_WARNING_SECONDS:
                    # Work is kept in the queue and the items table; the wait can be interrupted and the
                    # command run again later without losing anything.
                    bar.write(f"No progress for {STALL_WARNING_SECONDS} s: is a Celery worker running?")
                    warned = True
                bar.update(remaining - now_remaining)
                remaining = now_remaining
    finally:
        bar.close()
    return enrolment_run_finish(run=run)


def enrolment_run_finish_if_done(*, run_id: int) -> EnrolmentRun | None:
    """Finish the run if nothing of it is pending and nobody has yet (two last batches may race)."""
    if EnrolmentItem.objects.filter(run_id=run_id, status=EnrolmentItem.Status.PENDING).exists():
        return None
    run = EnrolmentRun.objects.filter(pk=run_id).exclude(status=EnrolmentRun.Status.FINISHED).first()
    return None if run is None else enrolment_run_finish(run=run)


def enrolment_run_finish(*, run: EnrolmentRun) -> EnrolmentRun:
    """Record the run's counts with its audit event (once), save the index snapshots, drop the item copies."""
    counts = {status: run.items.filter(status=status).count() for status in EnrolmentItem.Status.values}
    with transaction.atomic():
        locked = EnrolmentRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == EnrolmentRun.Status.FINISHED and locked.finished_at is not None and locked.counts:
            return locked  # another process finished it meanwhile (the last batch, or the waiting command)
        run.counts = counts
        run.status = EnrolmentRun.Status.FINISHED
        run.finished_at = timezone.now()
        run.save(update_fields=["counts", "status", "finished_at"])
        audit_event_record(
            action=AuditAction.GALLERY_ENROL,
            actor=run.actor,
            target=run.gallery,
            detail={
                "run_id": run.pk,
                "by": run.actor_name,
                "gallery": run.gallery.name,
                "source": run.source,
                **counts,
            },
        )
    # A search node stores a snapshot of the grown index (an inference worker never loads one).
    for pack_key in index_pack_keys(run.gallery_id):
        task_enqueue_on_commit(TaskName.INDEX_SNAPSHOT_WRITE, run.gallery_id, pack_key)
    if not counts.get(EnrolmentItem.Status.PENDING):
        enrolment_run_copies_delete(run=run)
    return run
