"""What rfr's own gallery pages (/manage/galleries/, search.views) do: the overview an admin reads, the
retention rule and "purge expired now", and bulk enrolment from an uploaded zip or a server folder.

Bulk enrolment reuses the command line's machinery (search.enrolment): the zip or folder holds `subjects.csv`
(`file,subject_ref|identity[,extra columns]`, read by `enrolment_entries_read`) beside the images it names; an
`EnrolmentRun` is created with its items, and the whole run is worked through on the inference queue
(`TaskName.GALLERY_ENROL_RUN`), resumable as every run is. Nothing outside the configured roots is ever read:
a zip is checked member by member before anything is extracted (absolute names, `..`, symbolic links, too many
members, too many bytes), and a folder, and every file its CSV names, must resolve inside RFR_ENROLMENT_ROOTS.
"""

from __future__ import annotations

import shutil
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import Conflict, InvalidInput, PayloadTooLarge
from rfr.queues import TaskName, task_enqueue_on_commit
from search.enrolment import enrolment_entries_read, enrolment_run_create, enrolment_run_execute
from search.galleries import gallery_purge_expired
from search.models import EnrolmentItem, EnrolmentRun, Gallery, IndexState, Template

Actor = AbstractBaseUser | AnonymousUser | None

SUBJECTS_CSV = "subjects.csv"
UPLOADS_FOLDER = "enrolment-uploads"
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
    """A failed item's file as the person who supplied it named it: relative to the upload or root folder."""
    path = Path(item.path)
    for base in (_uploads_root(), *settings.RFR_ENROLMENT_ROOTS):
        if path.is_relative_to(base):
            relative = path.relative_to(base)
            # An upload's own folder name (a random token) means nothing to the reader.
            return str(PurePosixPath(*relative.parts[1:])) if base == _uploads_root() else str(relative)
    return path.name


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
def _uploads_root() -> Path:
    return Path(settings.DATA_DIR).resolve() / UPLOADS_FOLDER


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


def enrolment_zip_extract(*, upload: IO[bytes], size: int) -> Path:
    """Check an uploaded zip, extract it into a folder of its own under the data folder, and return the folder
    that holds subjects.csv. Refused whole, with nothing left on disk, if any check fails."""
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
        dest = _uploads_root() / uuid.uuid4().hex
        dest.mkdir(parents=True)
        try:
            written = 0
            for info, parts in planned:
                written = _zip_member_extract(archive, info, dest, parts, written, limit)
            return _subjects_folder(dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise


def _zip_member_extract(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, parts: tuple[str, ...], written: int, limit: int
) -> int:
    """Write one member under dest; returns the bytes written so far. The sizes in a zip's directory can lie,
    so what actually comes out is counted against the limit."""
    if not parts:
        return written
    target = dest.joinpath(*parts)
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return written
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "xb") as out:
            while chunk := source.read(_COPY_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise _too_large_unpacked()
                out.write(chunk)
    except FileExistsError as error:
        raise InvalidInput("zip_duplicate_member", f"The zip holds {info.filename} twice.") from error
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        raise InvalidInput("invalid_zip", f"The zip cannot be unpacked ({info.filename} is damaged).") from error
    return written


def _subjects_folder(dest: Path) -> Path:
    """subjects.csv at the top of the zip, or in its one top-level folder (how most tools zip a folder)."""
    if (dest / SUBJECTS_CSV).is_file():
        return dest
    children = [child for child in dest.iterdir() if child.name != "__MACOSX"]
    if len(children) == 1 and children[0].is_dir() and (children[0] / SUBJECTS_CSV).is_file():
        return children[0]
    raise InvalidInput("subjects_csv_missing", f"The zip has no {SUBJECTS_CSV} beside its images.")


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
        real = Path(item.path).resolve()
        if not any(real.is_relative_to(root) for root in roots):
            EnrolmentItem.objects.filter(pk=item.pk).update(
                status=EnrolmentItem.Status.FAILED, message="the file leads outside the folders open for enrolment"
            )


def _run_start(
    *, gallery: Gallery, folder: Path, roots: list[Path], source: str, actor: Actor, request: HttpRequest | None
) -> EnrolmentRun:
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
    folder = enrolment_zip_extract(upload=upload, size=size)
    try:
        return _run_start(
            gallery=gallery,
            folder=folder,
            roots=[folder],
            source=f"zip upload {PurePosixPath(filename).name}"[:500],
            actor=actor,
            request=request,
        )
    except BaseException:
        shutil.rmtree(_upload_folder_of(folder) or folder, ignore_errors=True)
        raise


def enrolment_run_start_from_folder(
    *, gallery: Gallery, folder: str, actor: Actor = None, request: Any = None
) -> EnrolmentRun:
    resolved = enrolment_folder_resolve(folder=folder)
    return _run_start(
        gallery=gallery,
        folder=resolved,
        roots=list(settings.RFR_ENROLMENT_ROOTS),
        source=f"server folder {resolved}"[:500],
        actor=actor,
        request=request,
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


def _upload_folder_of(path: Path) -> Path | None:
    """The upload's own folder (data/enrolment-uploads/<token>) that `path` lies in, if it lies in one."""
    uploads = _uploads_root()
    if not path.is_relative_to(uploads) or path == uploads:
        return None
    return uploads / path.relative_to(uploads).parts[0]


def enrolment_run_process(*, run_id: int) -> EnrolmentRun | None:
    """Work through a run started from the page (on the inference queue), then delete an upload's extracted
    files: the images enrolled are in the gallery's storage, and the copies are not kept."""
    run = EnrolmentRun.objects.select_related("gallery").filter(pk=run_id).first()
    if run is None:
        return None
    if run.status != EnrolmentRun.Status.FINISHED or run.items.filter(status=EnrolmentItem.Status.PENDING).exists():
        run = enrolment_run_execute(run=run, in_process=True, progress=False)
    # Any item will do (an item's path may have been scrubbed since, when its subject was removed).
    for path in run.items.exclude(path="").order_by("pk").values_list("path", flat=True)[:50]:
        upload_folder = _upload_folder_of(Path(path))
        if upload_folder is not None:
            shutil.rmtree(upload_folder, ignore_errors=True)
            break
    return run
