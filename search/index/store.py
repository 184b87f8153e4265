"""Where index snapshots are kept: the Django storage `storages["index"]` (settings.STORAGES), local files by
default and an S3-compatible object store in production, so that search nodes share no disk.

No lock is needed because no snapshot is ever overwritten: each is an object of its own, named by gallery,
pack, epoch, mode and version (`gallery-<id>/<pack>-<hash>/<epoch>_<mode>/v<version>.rfridx`). A writer uploads a new
object (a put is atomic on object stores; FileSystemStorage writes a temporary file and renames it) and then
deletes the older ones; a reader lists the folder and takes the newest version of the current epoch, and if
that object was deleted between the listing and the read, it takes the next. Local files are written by
`SnapshotFileStorage` (the default backend of `storages["index"]`), which writes to a temporary file and
links it into place, so a reader never sees a half-written snapshot there either. Two nodes writing the same version
write equivalent snapshots; the second finds the name taken and leaves it.

Snapshots are streamed through a local temporary file on write (object stores upload from a file) and
read straight from the storage's file object, so a node never holds a second copy of an index in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from search.index.snapshots import SnapshotHeader, snapshot_read, snapshot_read_ids, snapshot_write

STORAGE_ALIAS = "index"
SUFFIX = ".rfridx"
_VERSION = re.compile(r"^v(\d+)\.rfridx$")


class SnapshotFileStorage(FileSystemStorage):
    """FileSystemStorage that makes a file appear whole or not at all (write, fsync, then link into place)."""

    def _save(self, name: str, content: Any) -> str:
        full = self.path(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        scratch = f"{full}.{uuid.uuid4().hex}.part"
        try:
            with open(scratch, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            # Atomic, and never replaces a file another writer linked first (the same version: keep theirs).
            with contextlib.suppress(FileExistsError):
                os.link(scratch, full)
        finally:
            os.unlink(scratch)
        return name


def index_storage() -> Storage:
    return storages[STORAGE_ALIAS]


def gallery_folder(gallery_id: int) -> str:
    return f"gallery-{gallery_id}"


def pack_folder(gallery_id: int, pack_key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", pack_key)[:80]
    digest = hashlib.sha256(pack_key.encode("utf-8")).hexdigest()[:10]
    return f"{gallery_folder(gallery_id)}/{slug}-{digest}"


@dataclass(frozen=True)
class StoredSnapshot:
    name: str
    epoch: str
    mode: str
    version: int


def _listdir(storage: Storage, folder: str) -> tuple[list[str], list[str]]:
    try:
        return storage.listdir(folder)
    except FileNotFoundError:
        return [], []


def snapshots_list(gallery_id: int, pack_key: str) -> list[StoredSnapshot]:
    """Every stored snapshot of one gallery index, newest version first within each epoch."""
    storage = index_storage()
    folder = pack_folder(gallery_id, pack_key)
    found: list[StoredSnapshot] = []
    for generation in _listdir(storage, folder)[0]:
        found.extend(_in_generation(storage, folder, generation))
    return sorted(found, key=lambda s: (s.epoch, s.mode, -s.version))


def _in_generation(storage: Storage, folder: str, generation: str) -> list[StoredSnapshot]:
    epoch, _, mode = generation.partition("_")
    found = []
    for name in _listdir(storage, f"{folder}/{generation}")[1]:
        match = _VERSION.match(name)
        if match:
            found.append(StoredSnapshot(f"{folder}/{generation}/{name}", epoch, mode, int(match.group(1))))
    return found


def snapshot_newest(gallery_id: int, pack_key: str, epoch: str, mode: str) -> StoredSnapshot | None:
    mine = [s for s in snapshots_list(gallery_id, pack_key) if s.epoch == epoch and s.mode == mode]
    return mine[0] if mine else None


def snapshot_fetch(stored: StoredSnapshot) -> tuple[SnapshotHeader, faiss.Index] | None:
    """The snapshot's header and index, streamed from storage (None: deleted meanwhile, or not a snapshot)."""
    try:
        with index_storage().open(stored.name, "rb") as handle:
            return snapshot_read(handle)
    except FileNotFoundError:
        return None


def snapshot_fetch_ids(stored: StoredSnapshot) -> tuple[SnapshotHeader, np.ndarray] | None:
    """The header and template ids only (what erasure checks), without the vectors."""
    try:
        with index_storage().open(stored.name, "rb") as handle:
            return snapshot_read_ids(handle)
    except FileNotFoundError:
        return None


def snapshot_put(header: SnapshotHeader, index: faiss.Index) -> StoredSnapshot | None:
    """Store a new snapshot under its version's name (None: that version is stored already)."""
    storage = index_storage()
    folder = f"{pack_folder(header.gallery_id, header.pack_key)}/{header.epoch}_{header.mode}"
    name = f"{folder}/v{header.version:012d}{SUFFIX}"
    if storage.exists(name):
        return None
    with tempfile.TemporaryFile(prefix="rfr-index-") as scratch:
        snapshot_write(scratch, header, index)
        scratch.seek(0)
        saved = storage.save(name, File(scratch, name=name))
    if saved != name:  # another node stored the same version a moment ago: keep one
        storage.delete(saved)
        return None
    return StoredSnapshot(name, header.epoch, header.mode, header.version)


def snapshot_delete(stored: StoredSnapshot) -> None:
    index_storage().delete(stored.name)


def gallery_snapshots(gallery_id: int) -> list[tuple[str, StoredSnapshot]]:
    """(pack folder, snapshot) for every stored snapshot of a gallery, whatever its pack."""
    storage = index_storage()
    found: list[tuple[str, StoredSnapshot]] = []
    for folder in _listdir(storage, gallery_folder(gallery_id))[0]:
        base = f"{gallery_folder(gallery_id)}/{folder}"
        for generation in _listdir(storage, base)[0]:
            found.extend((folder, stored) for stored in _in_generation(storage, base, generation))
    return found


def legacy_files(gallery_id: int) -> list[str]:
    """Files directly in a gallery's folder: the single-file snapshots (`*.faiss`), locks and temporaries of the
    releases before versioned snapshots. They may hold vectors, so erasure deletes them."""
    return [f"{gallery_folder(gallery_id)}/{name}" for name in _listdir(index_storage(), gallery_folder(gallery_id))[1]]


def stored_gallery_ids() -> list[int]:
    folders = _listdir(index_storage(), "")[0]
    return sorted(int(f.removeprefix("gallery-")) for f in folders if f.removeprefix("gallery-").isdigit())
