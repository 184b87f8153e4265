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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.files.base import File
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models.fields.files import FieldFile

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
