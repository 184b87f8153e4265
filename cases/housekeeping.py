"""Healing after faults: work the broker lost or never got, and image files that no row names.

- `work_requeue` sends probes and searches again that show no sign of a worker: pending ones whose queueing
  failed (the broker was down when their row committed, rfr.queues) or whose message a broker restart lost,
  and processing ones whose worker died. Run every minute by Celery beat (`cases.work_requeue`), so that after
  a broker outage every probe and search finishes with nobody touching it. A second delivery of the same work
  is harmless: the tasks re-fetch the row, skip finished work, and write their result under a row lock only
  if no other delivery has (cases.probes.probe_process, cases.searches.search_run).
- `work_waiting_for_worker` tells the progress display that nothing is moving ("Waiting for a worker…").
- `storage_orphans_sweep` removes stored files (local or in the object store) that no row names: what a process killed
  between writing a file and committing its row leaves (rfr.storage removes the files of a transaction that
  fails with an exception). Files younger than RFR_ORPHAN_GRACE_SECONDS are left alone, so an upload in flight
  is never touched. From `manage.py storage sweep` or the housekeeping task `cases.storage_sweep`; each sweep
  that removes files is audited with counts (never paths: a path names a case and an image hash).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Model, Q, QuerySet
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.models import Probe, ProbeFace, Search, TrackShot, Video
from rfr.queues import TaskName, task_enqueue
from rfr.storage import named_storage, storage_files_list
from search.enrolment_storage import ENROLMENT_FOLDER, ENROLMENT_STORAGE, enrolment_copies_needed
from search.models import GalleryImage

logger = logging.getLogger(__name__)

# Each re-send of work still pending waits twice as long as the one before, up to 2**5 times the first wait:
# a long backlog is not flooded with copies, and lost work is still found within minutes.
REQUEUE_MAX_DOUBLINGS = 5
# A pending item is "waiting for a worker" on the page after this many seconds; one processing, after this
# many seconds with no progress step.
WAITING_PENDING_SECONDS = 5
WAITING_PROCESSING_SECONDS = 90

_WORK: tuple[tuple[type[Probe] | type[Search] | type[Video], TaskName, str], ...] = (
    (Probe, TaskName.PROBE_PROCESS, "probes"),
    (Search, TaskName.SEARCH_RUN, "searches"),
    # Footage resumes after its last stored frame (cases.video), so sending it again loses nothing.
    (Video, TaskName.VIDEO_PROCESS, "videos"),
)


def _requeue_due(model: type[Probe] | type[Search] | type[Video], now: datetime) -> QuerySet[Model]:
    after = settings.RFR_REQUEUE_AFTER_SECONDS
    pending = Q(heartbeat_at__isnull=True)
    for doublings in range(REQUEUE_MAX_DOUBLINGS + 1):
        silent = Q(heartbeat_at__lt=now - timedelta(seconds=after * 2**doublings))
        requeues = Q(requeues__gte=doublings) if doublings == REQUEUE_MAX_DOUBLINGS else Q(requeues=doublings)
        pending |= silent & requeues
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - timedelta(seconds=settings.RFR_TASK_STALE_SECONDS))
    due = (Q(status=model.Status.PENDING) & pending) | (Q(status=model.Status.PROCESSING) & stale)
    return model.objects.filter(due).order_by("pk")


def work_requeue() -> dict[str, int]:
    """Send again the probes and searches that show no sign of a worker; counts of what was sent, by kind.

    Each row is claimed with a conditional update (its heartbeat as read), so two housekeeping runs at once
    never send the same row twice. If the broker still refuses, the row is left for the next round.
    """
    now = timezone.now()
    sent = {key: 0 for _, _, key in _WORK}
    for model, task, key in _WORK:
        for pk, status, heartbeat_at in _requeue_due(model, now).values_list("pk", "status", "heartbeat_at"):
            claimed = model.objects.filter(pk=pk, status=status, heartbeat_at=heartbeat_at).update(
                heartbeat_at=now, requeues=F("requeues") + 1
            )
            if not claimed:
                continue  # finished, progressed or claimed by another round since the query
            try:
                task_enqueue(task, pk)
            except Exception:
                logger.warning("the broker still refuses work; re-queueing stops until the next round", exc_info=True)
                model.objects.filter(pk=pk, status=status).update(heartbeat_at=None, requeues=F("requeues") - 1)
                return sent
            sent[key] += 1
    if any(sent.values()):
        logger.warning("re-queued work that showed no sign of a worker: %s", sent)
    return sent


def work_waiting_for_worker(work: Probe | Search | Video) -> bool:
    """Whether a pending or processing probe or search shows no sign of a worker (queued a few seconds ago
    and not started, or started and silent for a while): the page then says so instead of a frozen bar."""
    if work.status not in {work.Status.PENDING, work.Status.PROCESSING}:
        return False
    if work.heartbeat_at is None:
        return True
    silent = (timezone.now() - work.heartbeat_at).total_seconds()
    limit = WAITING_PENDING_SECONDS if work.status == work.Status.PENDING else WAITING_PROCESSING_SECONDS
    return silent > limit


# -- orphan files ------------------------------------------------------------------------------------------
# (STORAGES entry, folder): where rows name files. Walked and cleared through the storage API alone, so the
# sweep works the same on local folders and in an object store (rfr.storage, rfr.objectstore).
SWEPT_FOLDERS = (
    ("default", "probes"),
    ("gallery", "galleries"),
    ("default", "videos"),
    (ENROLMENT_STORAGE, ENROLMENT_FOLDER),
)


@dataclass(frozen=True)
class OrphanFile:
    name: str  # the storage's name for it
    kind: str
    size: int
    storage: str = "default"  # the STORAGES entry that holds it


@dataclass
class SweepReport:
    files: list[OrphanFile] = field(default_factory=list)
    removed: bool = False
    grace_seconds: int = 0

    @property
    def bytes(self) -> int:
        return sum(orphan.size for orphan in self.files)

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(orphan.kind for orphan in self.files).items()))


def _kind(name: str) -> str:
    if name.startswith("galleries/"):
        return "gallery_image"
    if name.startswith("probes/"):
        return "face_crop" if "/faces/" in name else "probe_original"
    if name.startswith(f"{ENROLMENT_FOLDER}/"):
        return "enrolment_item"
    if name.startswith("videos/"):
        return "track_shot" if "/video-" in name else "video_original"
    return "other"


def _referenced(names: set[str]) -> set[str]:
    """Which of `names` a row names (probe original, face crop, gallery image, video original, track shot,
    enrolment item still to do)."""
    found: set[str] = set()
    listed = sorted(names)
    for start in range(0, len(listed), 1000):
        chunk = listed[start : start + 1000]
        found.update(Probe.objects.filter(original__in=chunk).values_list("original", flat=True))
        found.update(ProbeFace.objects.filter(aligned_crop__in=chunk).values_list("aligned_crop", flat=True))
        found.update(GalleryImage.objects.filter(file__in=chunk).values_list("file", flat=True))
        # An item's copy is needed until the item is done; after that (or once its run is gone) it is not.
        found.update(enrolment_copies_needed(chunk))
        found.update(Video.objects.filter(original__in=chunk).values_list("original", flat=True))
        found.update(TrackShot.objects.filter(aligned_crop__in=chunk).values_list("aligned_crop", flat=True))
    return found


def storage_orphans_find(*, grace_seconds: int | None = None) -> list[OrphanFile]:
    """Files under the probe, gallery and enrolment folders that no row names, older than the grace."""
    grace = settings.RFR_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = time.time() - grace
    old: dict[str, tuple[int, str]] = {}
    for alias, folder in SWEPT_FOLDERS:
        for stored in storage_files_list(named_storage(alias), folder):
            if stored.modified > cutoff:
                continue  # young enough to belong to an upload in flight
            old[stored.name] = (stored.size, alias)
    # Only the old files are looked up, so a row committed after the walk cannot name a file taken for an orphan.
    referenced = _referenced(set(old))
    return [
        OrphanFile(name, _kind(name), size, alias)
        for name, (size, alias) in sorted(old.items())
        if name not in referenced
    ]


def storage_orphans_sweep(*, dry_run: bool = False, grace_seconds: int | None = None) -> SweepReport:
    """Find (and unless `dry_run`, remove) orphan files; a sweep that removes any is audited with counts."""
    grace = settings.RFR_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    report = SweepReport(files=storage_orphans_find(grace_seconds=grace), grace_seconds=grace)
    if dry_run or not report.files:
        return report
    removed: list[OrphanFile] = []
    for orphan in report.files:
        storage = named_storage(orphan.storage)
        try:
            if not storage.exists(orphan.name):
                continue  # removed meanwhile
            storage.delete(orphan.name)
        except FileNotFoundError:
            continue
        except Exception:  # one file that cannot go must not stop the sweep (OSError, S3 errors)
            logger.exception("could not remove orphan file %s", orphan.name)
            continue
        removed.append(orphan)
    report.files, report.removed = removed, True
    if removed:
        with transaction.atomic():
            audit_event_record(
                action=AuditAction.STORAGE_ORPHANS_REMOVED,
                target_type="storage",
                detail={
                    "files": len(removed),
                    "bytes": report.bytes,
                    "by_kind": report.by_kind,
                    "grace_seconds": grace,
                },
            )
        logger.warning("removed %d orphan files (%d bytes): %s", len(removed), report.bytes, report.by_kind)
    return report
