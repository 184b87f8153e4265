"""Bulk-enrolment items in storage: each run's files are copied into the "enrolment" entry of STORAGES, so that
any inference worker, on any machine, can enrol any batch of any run without seeing the folder they came from.

A run started from a server folder (`manage.py gallery enrol --images`, the gallery page's folder form) records
the folder; the first process to work on the run (the command itself, or the worker that takes the page's run)
copies the pending items in before any batch is queued, and records that it has. The copy is idempotent: a
copy that dies half way is made again, overwriting what it had written. A zip uploaded on the gallery page is
unpacked straight into storage, member by member (search.gallery_admin), so its run needs no copy.

Each run's copies live under `enrolment-uploads/<staging key>/`, named as the CSV names the file; they are
removed when the run finishes, and the work items of a removed subject lose theirs at once
(search.galleries). What a crash leaves behind, the orphan sweep removes (cases.housekeeping): only the copy
of an item still pending is needed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.db.models import Q
from django.utils import timezone

from rfr.storage import named_storage, storage_prefix_delete
from search.models import EnrolmentItem, EnrolmentRun

logger = logging.getLogger(__name__)

ENROLMENT_STORAGE = "enrolment"
ENROLMENT_FOLDER = "enrolment-uploads"
# Copies in flight at once: an object store answers each request in milliseconds, so a few in parallel keep
# the copy of a large folder from being bound by latency.
IMPORT_THREADS = 8
IMPORT_HEARTBEAT_SECONDS = 10.0


def enrolment_storage() -> Storage:
    return named_storage(ENROLMENT_STORAGE)


def staging_key_new() -> str:
    return uuid.uuid4().hex


def enrolment_run_prefix(run: EnrolmentRun) -> str:
    """The run's folder in the enrolment storage (runs made before the storage had keys use their id)."""
    return f"{ENROLMENT_FOLDER}/{run.staging_key or f'run-{run.pk}'}"


def enrolment_item_name(run: EnrolmentRun, path: str) -> str:
    """The storage name of an item's copy. An absolute path (a run recorded before items were copied) is
    kept whole under the run's folder."""
    relative = PurePosixPath(path.replace("\\", "/").lstrip("/"))
    return f"{enrolment_run_prefix(run)}/{relative.as_posix()}"


def enrolment_item_source(run: EnrolmentRun, path: str) -> Path:
    """Where a server-folder item is read from before its copy is made (an absolute path stays as it is)."""
    return Path(os.path.normpath(Path(run.import_folder) / path))


def _copy_in(storage: Storage, name: str, source: Path) -> str:
    """Copy one file in; '' if it was copied, else why not (the item's failure message)."""
    try:
        if source.stat().st_size > settings.RFR_MAX_UPLOAD_BYTES:
            return "file is larger than the upload limit"
        if storage.exists(name):
            storage.delete(name)  # a copy that died half way: made again whole
        with source.open("rb") as handle:
            saved = storage.save(name, File(handle, name=source.name))
    except FileNotFoundError:
        return "file not found"
    except IsADirectoryError:
        return "not a file"
    except OSError as error:
        return f"cannot read file: {error.strerror}"
    if saved != name:  # never expected: the name was freed above; the item could not find its copy
        storage.delete(saved)
        return "could not store a copy of the file"
    return ""


def enrolment_run_import(*, run: EnrolmentRun) -> int:
    """Copy the run's pending items in from its server folder, once; returns the files copied. Items that
    cannot be read are failed with the reason, as they would be when enrolled."""
    if run.imported_at is not None or not run.import_folder:
        return 0
    storage = enrolment_storage()
    items = list(run.items.filter(status=EnrolmentItem.Status.PENDING).only("pk", "path").order_by("pk"))

    def one(item: EnrolmentItem) -> tuple[int, str]:
        return item.pk, _copy_in(storage, enrolment_item_name(run, item.path), enrolment_item_source(run, item.path))

    results: list[tuple[int, str]] = []
    last_sign = time.monotonic()
    with ThreadPoolExecutor(max_workers=IMPORT_THREADS) as pool:
        for result in pool.map(one, items):
            results.append(result)
            if time.monotonic() - last_sign >= IMPORT_HEARTBEAT_SECONDS:
                # A long copy shows life, so housekeeping does not take the run for dead meanwhile.
                EnrolmentRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
                last_sign = time.monotonic()
    failed: dict[str, list[int]] = {}
    for pk, message in results:
        if message:
            failed.setdefault(message, []).append(pk)
    for message, pks in failed.items():
        EnrolmentItem.objects.filter(pk__in=pks, status=EnrolmentItem.Status.PENDING).update(
            status=EnrolmentItem.Status.FAILED, message=message
        )
    EnrolmentRun.objects.filter(pk=run.pk).update(imported_at=timezone.now())
    run.imported_at = timezone.now()
    copied = len(results) - sum(len(pks) for pks in failed.values())
    logger.info("enrolment run %s: %d files copied into storage, %d not", run.pk, copied, len(results) - copied)
    return copied


def enrolment_copies_needed(names: list[str]) -> set[str]:
    """Which of these storage names are copies of items still pending (the orphan sweep keeps those)."""
    wanted: dict[str, set[str]] = {}  # staging key → paths as items hold them
    for name in names:
        parts = name.split("/", 2)
        if len(parts) == 3 and parts[0] == ENROLMENT_FOLDER:
            wanted.setdefault(parts[1], set()).update({parts[2], f"/{parts[2]}"})  # relative, or as recorded
    if not wanted:
        return set()
    keys = [key for key in wanted if not key.startswith("run-")]
    legacy = [int(key[4:]) for key in wanted if key.startswith("run-") and key[4:].isdigit()]
    paths = set().union(*wanted.values())
    pending = (
        EnrolmentItem.objects.filter(status=EnrolmentItem.Status.PENDING, path__in=paths)
        .filter(Q(run__staging_key__in=keys) | Q(run_id__in=legacy, run__staging_key=""))
        .select_related("run")
    )
    needed = {enrolment_item_name(item.run, item.path) for item in pending}
    return needed & set(names)


def enrolment_run_copies_delete(*, run: EnrolmentRun) -> int:
    """Remove the run's copies (it has finished: every item is enrolled, skipped or failed)."""
    return storage_prefix_delete(enrolment_storage(), enrolment_run_prefix(run))


def enrolment_item_copies_delete(*, items: list[tuple[EnrolmentRun, str]]) -> None:
    """Remove the copies of these items (their subject was removed: nothing of it is kept)."""
    storage = enrolment_storage()
    for run, path in items:
        if not path:
            continue
        try:
            storage.delete(enrolment_item_name(run, path))
        except FileNotFoundError:
            continue
