"""Files that belong to database rows: written in the row's transaction, and removed if that transaction fails.

A probe's original, a face's aligned crop and a gallery image are saved to their final path before the row
that names them is inserted (the row needs the name). Django has no hook for a rollback, so the block that
writes them is `atomic_with_files()`: a `transaction.atomic()` that remembers every file saved through
`stored_file_save()` inside it and deletes them when the block leaves by an exception, after the database has
rolled back. Blocks nest like atomic blocks: a nested block that fails removes its own files (its savepoint is
rolled back), one that succeeds hands them to the enclosing block, which removes them if it fails in turn.

What no exception handler can see (the process killed between writing and committing, or an enclosing plain
`transaction.atomic()` of a caller rolling back) leaves an unreferenced file behind; the housekeeping sweep
(`cases.housekeeping.storage_orphans_sweep`) finds and removes those after a grace period.

A probe's files are never overwritten (a taken name gets a suffix), so each write owns its file. Gallery
images are named by content and overwritten, so that a resumed enrolment writes the very file an uninterrupted
one would: two enrolments of the same bytes share a name, and such a save passes `still_named`, asked after
the rollback, so that a file a committed row names is kept.

This module is also the one place that knows how a storage keeps its files: `named_storage()` hands out the
storage a `STORAGES` entry names (local folder or object store, rfr/objectstore.py), and
`storage_files_list()` / `storage_prefix_delete()` walk and clear a folder of it for housekeeping, in one
listing per page on an object store rather than one request per file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

logger = logging.getLogger(__name__)

_local = threading.local()


@dataclass
class FilesWritten:
    """The files saved inside one `atomic_with_files()` block: (storage, name, still_named)."""

    files: list[tuple[Storage, str, Callable[[], bool] | None]] = field(default_factory=list)

    def remove(self) -> None:
        for storage, name, still_named in self.files:
            try:
                if still_named is None or not still_named():
                    storage.delete(name)
            except Exception:  # the sweep finds it later; the error that rolled back is the one to report
                logger.exception("could not remove %s after a rollback", name)
        self.files.clear()


def _stack() -> list[FilesWritten]:
    stack: list[FilesWritten] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextmanager
def atomic_with_files(using: str | None = None) -> Iterator[FilesWritten]:
    """`transaction.atomic()` that deletes the files saved in it (`stored_file_save`) if it rolls back."""
    stack = _stack()
    written = FilesWritten()
    stack.append(written)
    try:
        with transaction.atomic(using=using):
            yield written
    except BaseException:
        written.remove()
        raise
    else:
        if len(stack) > 1:
            stack[-2].files.extend(written.files)
    finally:
        stack.pop()


def stored_file_save(
    field_file: FieldFile, name: str, content: File, *, still_named: Callable[[], bool] | None = None
) -> str:
    """Save `content` to the file field (without saving the row) and have the enclosing block own the file.

    Must be called inside `atomic_with_files()`: a file written anywhere else could outlive a failed insert.
    For a storage that overwrites, `still_named()` says whether a committed row names the file (kept if so).
    """
    stack = _stack()
    if not stack:
        raise RuntimeError("stored_file_save() must be called inside atomic_with_files()")
    field_file.save(name, content, save=False)
    stack[-1].files.append((field_file.storage, str(field_file.name), still_named))
    return str(field_file.name)


# -- named storages -------------------------------------------------------------------------------------------
class NamedStorage(LazyObject):
    """The storage that the `STORAGES` entry `alias` names, looked up on first use (like Django's
    `default_storage`), and again after the setting changes (tests switching to the object store)."""

    def __init__(self, alias: str) -> None:
        super().__init__()
        self.__dict__["_alias"] = alias

    def _setup(self) -> None:
        self._wrapped = storages[self.__dict__["_alias"]]


_named: dict[str, NamedStorage] = {}


def named_storage(alias: str) -> Storage:
    """The storage of one `STORAGES` entry ("default", "gallery", "enrolment", ...), as a lazy handle that a
    model field may hold from import time on."""
    handle = _named.get(alias)
    if handle is None:
        handle = _named[alias] = NamedStorage(alias)
    return handle  # type: ignore[return-value]  # a LazyObject passes for the Storage it wraps


@receiver(setting_changed)
def _storages_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STORAGES", "MEDIA_ROOT"):
        for handle in _named.values():
            handle.__dict__["_wrapped"] = empty  # looked up again on next use


# -- walking and clearing a folder of a storage ----------------------------------------------------------------
@dataclass(frozen=True)
class StoredFile:
    name: str  # the storage's name for it, as a row would hold it
    size: int
    modified: float  # seconds since the epoch


def _resolved(storage: Storage) -> Any:
    """The storage itself behind a lazy handle (default_storage, named_storage())."""
    if isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        return storage._wrapped
    return storage


def _s3_location(storage: Any) -> str | None:
    """The key prefix of an S3Storage (django-storages), or None for any other kind of storage."""
    if getattr(storage, "bucket_name", None) is None or not hasattr(storage, "bucket"):
        return None
    return str(storage.location or "").strip("/")


def storage_files_list(storage: Storage, folder: str) -> Iterator[StoredFile]:
    """Every file under `folder` of the storage, at any depth, with its size and modification time.

    Local folders: symbolic links are not listed (not ours to remove). An object store: one paged listing of
    the prefix, which carries sizes and times, rather than a request per file.
    """
    folder = folder.strip("/")
    target = _resolved(storage)
    location = _s3_location(target)
    if location is not None:
        prefix = f"{location}/{folder}/" if location else f"{folder}/"
        for obj in target.bucket.objects.filter(Prefix=prefix):
            name = obj.key[len(location) + 1 :] if location else obj.key
            yield StoredFile(name, int(obj.size), obj.last_modified.timestamp())
        return
    if isinstance(target, FileSystemStorage):
        root = Path(target.location)
        for directory, _dirs, files in os.walk(root / folder):
            for filename in files:
                path = Path(directory) / filename
                try:
                    stat = path.lstat()
                except FileNotFoundError:
                    continue  # removed meanwhile
                if path.is_symlink():
                    continue
                yield StoredFile(path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime)
        return
    yield from _generic_files_list(target, folder)


def _generic_files_list(storage: Storage, folder: str) -> Iterator[StoredFile]:
    """Any other storage, through the storage API alone."""
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for filename in files:
        name = f"{folder}/{filename}"
        try:
            yield StoredFile(name, storage.size(name), storage.get_modified_time(name).timestamp())
        except FileNotFoundError:
            continue
    for directory in directories:
        yield from _generic_files_list(storage, f"{folder}/{directory}")


def storage_prefix_delete(storage: Storage, folder: str) -> int:
    """Delete every file under `folder` (and, on local disk, the emptied folders); returns the files removed."""
    target = _resolved(storage)
    location = _s3_location(target)
    if location is not None:
        # An object store: up to 1,000 keys per request rather than a request per file.
        names = [stored.name for stored in storage_files_list(target, folder)]
        keys = [f"{location}/{name}" if location else name for name in names]
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            target.bucket.delete_objects(Delete={"Objects": chunk, "Quiet": True})
        return len(keys)
    removed = 0
    for stored in list(storage_files_list(storage, folder)):
        try:
            storage.delete(stored.name)
            removed += 1
        except FileNotFoundError:
            continue
    if isinstance(target, FileSystemStorage):
        # Empty folders left behind, deepest first; a folder something else still holds is left alone.
        root = Path(target.location) / folder.strip("/")
        for directory, _dirs, _files in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
            with suppress(OSError):
                os.rmdir(directory)
    return removed
