"""What rfr's own gallery pages (/manage/galleries/, search.views) do: the overview an admin reads, the
retention rule and "purge expired now", and bulk enrolment from an uploaded zip or a server folder.

Bulk enrolment reuses the command line's machinery (search.enrolment): the zip or folder holds `subjects.csv`
(`file,subject_ref|identity[,extra columns]`, read by `enrolment_entries_read`) beside the images it names; an
`EnrolmentRun` is created with its items, and the whole run is worked through on the inference queue
(`TaskName.GALLERY_ENROL_RUN`): the worker that takes it copies a folder's files into the enrolment storage and
queues its batches for every inference worker, on any machine (search.enrolment_storage); resumable as every
run is. Nothing outside the configured roots is ever read: a zip is checked member by member before anything
is unpacked (absolute names, `..`, symbolic links, too many members, too many bytes) and unpacked straight into
storage, and a folder, and every file its CSV names, must resolve inside RFR_ENROLMENT_ROOTS.
"""

from __future__ import annotations

import io
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files import File
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import Conflict, InvalidInput, PayloadTooLarge
from rfr.queues import TaskName, task_enqueue_on_commit
from rfr.storage import storage_prefix_delete
from search.enrolment import (
    EnrolmentEntry,
    enrolment_entries_parse,
    enrolment_entries_read,
    enrolment_run_create,
    enrolment_run_fan_out,
)
from search.enrolment_storage import ENROLMENT_FOLDER, enrolment_item_source, enrolment_storage, staging_key_new
from search.galleries import gallery_purge_expired
from search.models import EnrolmentItem, EnrolmentRun, Gallery, IndexState, Template

Actor = AbstractBaseUser | AnonymousUser | None

SUBJECTS_CSV = "subjects.csv"
_COPY_CHUNK = 1 << 20


# -- reading ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GalleryOverview:
    gallery: Gallery
    subjects: int
    images: int
    templates_by_pack: dict[str, int]
    index_versions: dict[str, int]
    runs_in_progress: int


def galleries_overview(galleries: Any = None) -> list[GalleryOverview]:
    """Each gallery with its counts, its templates per model pack and its index versions, for the list page."""
    galleries = list(
        (galleries if galleries is not None else Gallery.objects.all()).annotate(
            subject_count=Count("subjects", distinct=True),
            image_count=Count("images", distinct=True),
            running=Count(
                "enrolment_runs", filter=Q(enrolment_runs__status=EnrolmentRun.Status.RUNNING), distinct=True
            ),
        )
    )
    ids = [gallery.pk for gallery in galleries]
    templates: dict[int, dict[str, int]] = {}
    for row in Template.objects.filter(gallery_id__in=ids).values("gallery_id", "pack_key").annotate(n=Count("pk")):
        templates.setdefault(row["gallery_id"], {})[row["pack_key"]] = row["n"]
    versions: dict[int, dict[str, int]] = {}
    for state in IndexState.objects.filter(gallery_id__in=ids):
        versions.setdefault(state.gallery_id, {})[state.pack_key] = state.version
    return [
        GalleryOverview(
            gallery=gallery,
            subjects=gallery.subject_count,
            images=gallery.image_count,
            templates_by_pack=dict(sorted(templates.get(gallery.pk, {}).items())),
            index_versions=dict(sorted(versions.get(gallery.pk, {}).items())),
            runs_in_progress=gallery.running,
        )
        for gallery in galleries
    ]


def enrolment_run_progress(*, run: EnrolmentRun) -> dict[str, Any]:
    """What the run page and its polling show: counts per item status, a percentage and a sentence."""
    counts = {status: 0 for status in EnrolmentItem.Status.values}
    for row in run.items.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    total = sum(counts.values())
    done = total - counts[EnrolmentItem.Status.PENDING]
    progress = round(100 * done / total) if total else 100
    finished = run.status == EnrolmentRun.Status.FINISHED
    if finished:
        text = (
            f"Finished: {counts['enrolled']} enrolled, {counts['skipped']} already enrolled, "
            f"{counts['failed']} not enrolled."
        )
    else:
        text = f"{done} of {total} files done: {counts['enrolled']} enrolled, {counts['failed']} not enrolled."
    return {
        "id": run.pk,
        "status": "done" if finished else "processing",
        "run_status": run.status,
        "total": total,
        "done": done,
        "counts": counts,
        "progress": progress,
        "status_text": text,
    }


def enrolment_item_display_path(*, item: EnrolmentItem) -> str:
    """A failed item's file as the person who supplied it named it in subjects.csv."""
    return item.path


# -- retention -------------------------------------------------------------------------------------------------
def gallery_retention_set(
    *, gallery: Gallery, retention_days: int | None, actor: Actor = None, request: HttpRequest | None = None
) -> Gallery:
    """Change how long a gallery keeps images (None keeps them); the next purge applies the new rule."""
    if retention_days is not None and retention_days < 1:
        raise InvalidInput("invalid_retention", "The retention period must be at least one day, or empty.")
    with transaction.atomic():
        gallery = Gallery.objects.select_for_update().get(pk=gallery.pk)
        before = gallery.retention_days
        gallery.retention_days = retention_days
        gallery.save(update_fields=["retention_days"])
        audit_event_record(
            action=AuditAction.GALLERY_RETENTION_SET,
            actor=actor,
            target=gallery,
            request=request,
            detail={"gallery": gallery.name, "before": before, "after": retention_days},
        )
    return gallery


def gallery_purge_now(*, gallery: Gallery, actor: Actor = None, request: HttpRequest | None = None) -> int:
    """Apply the gallery's retention rule at once; the request is audited even when nothing had expired."""
    if gallery.retention_days is None:
        raise InvalidInput("no_retention_rule", "This gallery keeps its images: set a retention period first.")
    with transaction.atomic():
        purged = gallery_purge_expired(gallery=gallery, actor=actor).get(gallery.name, 0)
        audit_event_record(
            action=AuditAction.GALLERY_PURGE_REQUESTED,
            actor=actor,
            target=gallery,
            request=request,
            detail={"gallery": gallery.name, "retention_days": gallery.retention_days, "images_deleted": purged},
        )
    return purged


# -- bulk enrolment: where the files come from ------------------------------------------------------------------
def _too_large_unpacked() -> PayloadTooLarge:
    return PayloadTooLarge("zip_too_large_uncompressed", "The zip's contents are too large once unpacked.")


def _zip_member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The member's path as parts, or InvalidInput for any name or kind that could land outside the folder."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidInput("zip_unsafe_member", f"The zip holds a symbolic link ({info.filename}); it was refused.")
    if info.flag_bits & 0x1:
        raise InvalidInput("zip_encrypted", f"The zip holds an encrypted file ({info.filename}); it was refused.")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]) or "\x00" in name:
        raise InvalidInput(
            "zip_unsafe_member", f"The zip names a file outside its own folder ({info.filename}); it was refused."
        )
    return tuple(part for part in parts if part not in ("", "."))


@dataclass
class _Unpacked:
    """Bytes that came out of the zip so far, counted against the limit (the sizes in a zip's directory lie)."""

    limit: int
    written: int = 0

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=_COPY_CHUNK * 8)  # noqa: SIM115  # handed to the caller
        try:
            with archive.open(info) as source:
                while chunk := source.read(_COPY_CHUNK):
                    self.written += len(chunk)
                    if self.written > self.limit:
                        raise _too_large_unpacked()
                    spool.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
            spool.close()
            raise InvalidInput("invalid_zip", f"The zip cannot be unpacked ({info.filename} is damaged).") from error
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool


def _subjects_base(planned: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> tuple[str, ...]:
    """subjects.csv at the top of the zip, or in its one top-level folder (how most tools zip a folder)."""
    files = {parts for info, parts in planned if parts and not info.is_dir()}
    if (SUBJECTS_CSV,) in files:
        return ()
    tops = {parts[0] for parts in files if parts[0] != "__MACOSX"} | {
        parts[0] for info, parts in planned if info.is_dir() and parts and parts[0] != "__MACOSX"
    }
    if len(tops) == 1 and (top := next(iter(tops)), SUBJECTS_CSV) in files:
        return (top,)
    raise InvalidInput("subjects_csv_missing", f"The zip has no {SUBJECTS_CSV} beside its images.")


def enrolment_zip_store(*, upload: IO[bytes], size: int) -> tuple[str, list[EnrolmentEntry]]:
    """Check an uploaded zip and unpack the folder that holds subjects.csv straight into the enrolment storage,
    under a staging key of its own; returns the key and the CSV's rows. Refused whole, with nothing left in
    storage, if any check fails."""
    if size > settings.RFR_ENROLMENT_ZIP_MAX_BYTES:
        raise PayloadTooLarge(
            "zip_too_large",
            f"The zip is larger than {settings.RFR_ENROLMENT_ZIP_MAX_BYTES // (1024 * 1024)} MB; "
            "name a server folder instead.",
        )
    try:
        archive = zipfile.ZipFile(upload)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise InvalidInput("invalid_zip", "The file is not a zip archive that can be read.") from error
    with archive:
        if len(members) > settings.RFR_ENROLMENT_ZIP_MAX_MEMBERS:
            raise PayloadTooLarge(
                "zip_too_many_files", f"The zip holds more than {settings.RFR_ENROLMENT_ZIP_MAX_MEMBERS} files."
            )
        limit = settings.RFR_ENROLMENT_ZIP_MAX_UNCOMPRESSED_BYTES
        if sum(info.file_size for info in members) > limit:
            raise _too_large_unpacked()
        planned = [(info, _zip_member_parts(info)) for info in members]
        base = _subjects_base(planned)
        unpacked = _Unpacked(limit)
        key = staging_key_new()
        storage = enrolment_storage()
        prefix = f"{ENROLMENT_FOLDER}/{key}"
        try:
            entries: list[EnrolmentEntry] = []
            seen: set[tuple[str, ...]] = set()
            for info, parts in planned:
                if info.is_dir() or not parts or parts[: len(base)] != base or len(parts) == len(base):
                    continue
                relative = parts[len(base) :]
                if relative in seen:
                    raise InvalidInput("zip_duplicate_member", f"The zip holds {info.filename} twice.")
                seen.add(relative)
                with unpacked.read(archive, info) as data:
                    if relative == (SUBJECTS_CSV,):
                        text = io.TextIOWrapper(data, encoding="utf-8-sig", newline="")
                        entries = enrolment_entries_parse(text, name=SUBJECTS_CSV)
                    else:
                        storage.save(f"{prefix}/{'/'.join(relative)}", File(data, name=relative[-1]))
            return key, entries
        except BaseException:
            storage_prefix_delete(storage, prefix)
            raise


def enrolment_folder_resolve(*, folder: str) -> Path:
    """A server folder named on the page, resolved (symbolic links followed) and refused unless it lies
    inside one of RFR_ENROLMENT_ROOTS and holds subjects.csv. A relative name is taken from the first root."""
    roots: list[Path] = list(settings.RFR_ENROLMENT_ROOTS)
    if not roots:
        raise InvalidInput(
            "enrolment_roots_unset",
            "No server folder is open for enrolment: an operator must list one in RFR_ENROLMENT_ROOTS.",
        )
    named = Path(folder.strip())
    if not folder.strip() or "\x00" in folder:
        raise InvalidInput("folder_required", "Name a folder.")
    resolved = (named if named.is_absolute() else roots[0] / named).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidInput(
            "folder_outside_roots",
            f"{folder} is outside the folders open for enrolment ({', '.join(str(r) for r in roots)}).",
        )
    if not resolved.is_dir():
        raise InvalidInput("folder_not_found", f"There is no folder {folder} on the server.")
    csv_path = (resolved / SUBJECTS_CSV).resolve()
    if not csv_path.is_file() or not csv_path.is_relative_to(resolved):
        raise InvalidInput("subjects_csv_missing", f"{folder} holds no {SUBJECTS_CSV}.")
    return resolved


# -- bulk enrolment: the run -----------------------------------------------------------------------------------
def _items_confine(*, run: EnrolmentRun, roots: list[Path]) -> None:
    """Fail every item whose file resolves (symbolic links followed) outside the roots, before it is read."""
    for item in run.items.filter(status=EnrolmentItem.Status.PENDING).only("pk", "path"):
        real = enrolment_item_source(run, item.path).resolve()
        if not any(real.is_relative_to(root) for root in roots):
            EnrolmentItem.objects.filter(pk=item.pk).update(
                status=EnrolmentItem.Status.FAILED, message="the file leads outside the folders open for enrolment"
            )


def _run_start(*, gallery: Gallery, folder: Path, roots: list[Path], source: str, actor: Actor) -> EnrolmentRun:
    entries = enrolment_entries_read(images_dir=folder, subjects_csv=folder / SUBJECTS_CSV)
    if not entries:
        raise InvalidInput("subjects_csv_empty", f"{SUBJECTS_CSV} lists no files.")
    with transaction.atomic():
        run = enrolment_run_create(gallery=gallery, images_dir=folder, entries=entries, actor=actor, source=source)
        _items_confine(run=run, roots=roots)
        task_enqueue_on_commit(TaskName.GALLERY_ENROL_RUN, run.pk)
    return run


def enrolment_run_start_from_zip(
    *, gallery: Gallery, upload: IO[bytes], filename: str, size: int, actor: Actor = None, request: Any = None
) -> EnrolmentRun:
    """A run over an uploaded zip, whose files are unpacked straight into the enrolment storage."""
    key, entries = enrolment_zip_store(upload=upload, size=size)
    try:
        if not entries:
            raise InvalidInput("subjects_csv_empty", f"{SUBJECTS_CSV} lists no files.")
        with transaction.atomic():
            run = enrolment_run_create(
                gallery=gallery,
                images_dir=None,
                entries=entries,
                actor=actor,
                source=f"zip upload {PurePosixPath(filename).name}"[:500],
                staging_key=key,
            )
            task_enqueue_on_commit(TaskName.GALLERY_ENROL_RUN, run.pk)
        return run
    except BaseException:
        storage_prefix_delete(enrolment_storage(), f"{ENROLMENT_FOLDER}/{key}")
        raise


def enrolment_run_start_from_folder(
    *, gallery: Gallery, folder: str, actor: Actor = None, request: Any = None
) -> EnrolmentRun:
    """A run over a server folder; the worker that takes it copies the files into storage first."""
    resolved = enrolment_folder_resolve(folder=folder)
    return _run_start(
        gallery=gallery,
        folder=resolved,
        roots=list(settings.RFR_ENROLMENT_ROOTS),
        source=f"server folder {resolved}"[:500],
        actor=actor,
    )


def enrolment_run_resume(*, run: EnrolmentRun, actor: Actor = None, request: HttpRequest | None = None) -> int:
    """Queue an unfinished run again (its worker died, or its message was lost); the items already done are
    left alone, so a run still being worked on enrols nothing twice. Returns the files still pending."""
    with transaction.atomic():
        run = EnrolmentRun.objects.select_for_update().select_related("gallery").get(pk=run.pk)
        pending = run.items.filter(status=EnrolmentItem.Status.PENDING).count()
        if not pending:
            raise Conflict("run_complete", f"Enrolment run {run.pk} has no files left to enrol.")
        audit_event_record(
            action=AuditAction.GALLERY_ENROL_RESUME,
            actor=actor,
            target=run.gallery,
            request=request,
            detail={"run_id": run.pk, "gallery": run.gallery.name, "pending": pending},
        )
        task_enqueue_on_commit(TaskName.GALLERY_ENROL_RUN, run.pk)
    return pending


def enrolment_run_process(*, run_id: int) -> EnrolmentRun | None:
    """Take a run started from the page (on the inference queue): copy a server folder's files into storage,
    then queue its batches for every inference worker; the batch that leaves nothing pending finishes it."""
    run = EnrolmentRun.objects.select_related("gallery").filter(pk=run_id).first()
    if run is None:
        return None
    if (
        run.status == EnrolmentRun.Status.FINISHED
        and not run.items.filter(status=EnrolmentItem.Status.PENDING).exists()
    ):
        return run
    enrolment_run_fan_out(run=run)
    run.refresh_from_db()
    return run
