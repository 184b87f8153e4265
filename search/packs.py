"""Model packs from rfr's own pages (/manage/modelpacks/, search.views): which are installed, whether their
files still match their hashes, which one is active, and re-embedding every gallery image with a pack.

The active pack is the RFR_MODEL_PACK setting unless an administrator chose one here: the choice is stored
(`ActivePack`, one row) and read by `rfr.engine.active_pack_name` through the reader this app registers in its
AppConfig.ready. Templates of different packs are never compared, so a newly activated pack finds nothing in a
gallery until its images are re-embedded with it: `reembed_run_create` queues a `ReembedRun` on the inference
queue, which adds one template of the pack per gallery image (the enrolment rule: the one dominant face), each
with its index change, and skips images that already have one, so a run that died can simply be started again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Count, F
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from faceengine import FaceEngine, ImageRejected, ModelPack, ModelPackError, decode_image, get_engine, load_pack
from rfr.engine import active_pack_name, image_limits
from rfr.errors import Conflict, InvalidInput, NotFound
from rfr.queues import TaskName, task_enqueue_on_commit
from search.enrolment import EnrolmentError, enrolment_face_choose
from search.index.changes import index_changes_record
from search.models import ActivePack, GalleryImage, IndexChange, ReembedRun, Template

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None
# Per-image failures kept on the run for the page; the counts stay exact beyond it.
REEMBED_ERRORS_KEPT = 200


# -- the active pack ----------------------------------------------------------------------------------------
def active_pack_choice_name() -> str | None:
    """The pack an administrator chose, or None (then RFR_MODEL_PACK decides). Registered with rfr.engine."""
    try:
        return ActivePack.objects.filter(pk=ActivePack.SINGLETON_PK).values_list("name", flat=True).first()
    except DatabaseError:
        # Before `migrate` has made the table (a fresh install running its first commands).
        return None


def _packs_root() -> Path:
    return Path(settings.RFR_MODEL_PACK_DIR)


def _pack_folder(name: str) -> Path:
    """The installed pack folder of that name; NotFound for anything else (a path, `..`, a typo)."""
    root = _packs_root()
    installed = {child.name for child in root.iterdir() if child.is_dir()} if root.is_dir() else set()
    if name not in installed or name.startswith("."):
        raise NotFound("pack_not_found", f"No model pack named {name!r} is installed.")
    return root / name


def _pack_load(name: str) -> ModelPack:
    try:
        return load_pack(_pack_folder(name))
    except ModelPackError as error:
        raise InvalidInput("pack_broken", error.message) from error


# -- reading ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackRow:
    name: str
    pack: ModelPack | None
    problem: str
    active: bool
    templates: int

    @property
    def key(self) -> str:
        return self.pack.key if self.pack is not None else ""


def modelpacks_list() -> list[PackRow]:
    """Every installed pack with its manifest (read, not hash-checked: that is `modelpack_verify`), whether it
    is active, and how many gallery templates it has."""
    root = _packs_root()
    active = active_pack_name()
    counts = {row["pack_key"]: row["n"] for row in Template.objects.values("pack_key").annotate(n=Count("pk"))}
    rows = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        try:
            pack: ModelPack | None = load_pack(folder, verify=False)
            problem = ""
        except ModelPackError as error:
            pack, problem = None, error.message
        rows.append(
            PackRow(
                name=folder.name,
                pack=pack,
                problem=problem,
                active=folder.name == active,
                templates=counts.get(pack.key, 0) if pack is not None else 0,
            )
        )
    return rows


def gallery_images_total() -> int:
    return GalleryImage.objects.count()


def reembed_run_progress(*, run: ReembedRun) -> dict[str, Any]:
    finished = run.status != ReembedRun.Status.RUNNING
    progress = round(100 * run.done / run.total) if run.total else 100
    if run.status == ReembedRun.Status.FAILED:
        text = f"Stopped: {run.message}"
    elif finished:
        text = f"Finished: {run.embedded} embedded, {run.skipped} already had one, {run.failed} failed."
    else:
        text = f"{run.done} of {run.total} images done: {run.embedded} embedded, {run.failed} failed."
    return {
        "id": run.pk,
        "status": ("failed" if run.status == ReembedRun.Status.FAILED else "done") if finished else "processing",
        "run_status": run.status,
        "total": run.total,
        "done": run.done,
        "counts": {"embedded": run.embedded, "skipped": run.skipped, "failed": run.failed},
        "progress": progress,
        "status_text": text,
    }


# -- verify and activate ------------------------------------------------------------------------------------
def modelpack_verify(*, name: str, actor: Actor = None, request: HttpRequest | None = None) -> tuple[bool, str]:
    """Check every file of the pack against its manifest's sha256; the check and its result are audited."""
    folder = _pack_folder(name)
    try:
        pack = load_pack(folder)
        ok, message, key = True, f"{pack.key}: every file matches its sha256.", pack.key
    except ModelPackError as error:
        ok, message, key = False, error.message, ""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.MODELPACK_VERIFIED,
            actor=actor,
            target_type="modelpack",
            target_id=name,
            request=request,
            detail={"pack": name, "pack_key": key, "ok": ok, "message": message[:500]},
        )
    return ok, message


def modelpack_activate(*, name: str, actor: Actor = None, request: HttpRequest | None = None) -> ModelPack:
    """Make an installed pack, whose files verify, the active one for every process (probes, enrolment,
    searches), overriding RFR_MODEL_PACK. Refused for a pack that does not verify."""
    pack = _pack_load(name)
    user: Any = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        before = active_pack_name()
        ActivePack.objects.update_or_create(
            pk=ActivePack.SINGLETON_PK, defaults={"name": name, "pack_key": pack.key, "chosen_by": user}
        )
        audit_event_record(
            action=AuditAction.MODELPACK_ACTIVATED,
            actor=actor,
            target_type="modelpack",
            target_id=name,
            request=request,
            detail={"pack": name, "pack_key": pack.key, "before": before},
        )
    return pack


# -- re-embedding -------------------------------------------------------------------------------------------
def reembed_run_create(*, name: str, actor: Actor = None, request: HttpRequest | None = None) -> ReembedRun:
    """Queue the re-embedding of every gallery image with the pack (which must verify)."""
    pack = _pack_load(name)
    user: Any = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        if ReembedRun.objects.select_for_update().filter(pack_key=pack.key, status=ReembedRun.Status.RUNNING).exists():
            raise Conflict("reembed_running", f"A re-embedding with {pack.key} is already running.")
        run = ReembedRun.objects.create(
            pack_name=name,
            pack_key=pack.key,
            actor=user,
            actor_name=getattr(user, "username", "") or "command line",
            total=GalleryImage.objects.count(),
        )
        audit_event_record(
            action=AuditAction.MODELPACK_REEMBED_START,
            actor=actor,
            target=run,
            request=request,
            detail={"run_id": run.pk, "pack": name, "pack_key": pack.key, "images": run.total},
        )
        task_enqueue_on_commit(TaskName.MODELPACK_REEMBED, run.pk)
    return run


def _reembed_one(*, image: GalleryImage, engine: FaceEngine) -> bool:
    """Add the pack's template for one image; False if it has one already. EnrolmentError if it cannot."""
    pack_key = engine.pack.key
    if Template.objects.filter(image=image, pack_key=pack_key).exists():
        return False
    try:
        with image.file.open("rb") as handle:
            data = handle.read()
    except (OSError, ValueError) as error:
        raise EnrolmentError("the stored image file cannot be read") from error
    try:
        pixels = decode_image(data, image_limits())
    except ImageRejected as error:
        raise EnrolmentError(error.message) from error
    face = enrolment_face_choose(engine.analyse(pixels), pixels.shape)
    with transaction.atomic():
        # Locked, so two deliveries of the same run never give one image two templates of a pack.
        locked = GalleryImage.objects.select_for_update().filter(pk=image.pk).first()
        if locked is None or Template.objects.filter(image=image, pack_key=pack_key).exists():
            return False
        template = Template.objects.create(
            gallery_id=image.gallery_id,
            subject_id=image.subject_id,
            image=image,
            pack_key=pack_key,
            box=[round(float(v), 2) for v in face.box],
            landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
            quality=face.quality.to_dict(),
            embedding=np.asarray(face.template, dtype="<f4").tobytes(),
        )
        index_changes_record(
            gallery_id=image.gallery_id, pack_key=pack_key, changes=[(template.pk, IndexChange.Op.ADD)]
        )
    return True


def _reembed_finish(*, run: ReembedRun, status: str, message: str = "") -> ReembedRun:
    with transaction.atomic():
        run = ReembedRun.objects.select_for_update().get(pk=run.pk)
        run.status = status
        run.message = message[:500]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])
        audit_event_record(
            action=AuditAction.MODELPACK_REEMBED,
            actor=run.actor,
            target=run,
            detail={
                "run_id": run.pk,
                "pack_key": run.pack_key,
                "status": status,
                "embedded": run.embedded,
                "skipped": run.skipped,
                "failed": run.failed,
                "message": run.message,
            },
        )
    return run


def reembed_run_execute(*, run_id: int) -> ReembedRun | None:
    """Work through every gallery image (on the inference queue); safe to run again after a crash."""
    run = ReembedRun.objects.filter(pk=run_id).first()
    if run is None or run.status != ReembedRun.Status.RUNNING:
        return run
    try:
        pack_dir = _pack_folder(run.pack_name)
        engine = get_engine(pack_dir, threads=settings.RFR_ENGINE_THREADS)
    except (NotFound, ModelPackError) as error:
        return _reembed_finish(run=run, status=ReembedRun.Status.FAILED, message=str(error))
    if engine.pack.key != run.pack_key:
        return _reembed_finish(
            run=run, status=ReembedRun.Status.FAILED, message=f"the pack is now {engine.pack.key}, not {run.pack_key}"
        )
    # A redelivered run starts its counts again; the images done already are counted as skipped.
    ReembedRun.objects.filter(pk=run.pk).update(
        total=GalleryImage.objects.count(), done=0, embedded=0, skipped=0, failed=0, errors=[]
    )
    try:
        galleries = _reembed_images(run=run, engine=engine)
    except (OperationalError, InterfaceError):
        raise  # transient: the task is retried, and the run carries on where it stopped
    except Exception as error:
        # A fault of the work itself (engine, storage): the run says so rather than running for ever.
        logger.exception("re-embedding run %s stopped", run.pk)
        return _reembed_finish(run=run, status=ReembedRun.Status.FAILED, message=f"stopped by an error: {error}")
    for gallery_id in sorted(galleries):  # a search node stores the new pack's index (search.index.node)
        task_enqueue_on_commit(TaskName.INDEX_SNAPSHOT_WRITE, gallery_id, run.pack_key)
    run.refresh_from_db()
    return _reembed_finish(run=run, status=ReembedRun.Status.FINISHED)


def _reembed_images(*, run: ReembedRun, engine: FaceEngine) -> set[int]:
    """Every gallery image, one at a time; returns the galleries that gained templates."""
    galleries: set[int] = set()
    errors: list[dict[str, Any]] = []
    for image in GalleryImage.objects.order_by("pk").iterator(chunk_size=200):
        outcome: dict[str, Any] = {"done": F("done") + 1}
        try:
            if _reembed_one(image=image, engine=engine):
                outcome["embedded"] = F("embedded") + 1
                galleries.add(image.gallery_id)
            else:
                outcome["skipped"] = F("skipped") + 1
        except EnrolmentError as error:
            outcome["failed"] = F("failed") + 1
            if len(errors) < REEMBED_ERRORS_KEPT:
                errors.append({"image_id": image.pk, "gallery_id": image.gallery_id, "message": error.message})
                outcome["errors"] = errors
        ReembedRun.objects.filter(pk=run.pk).update(**outcome)
    return galleries
