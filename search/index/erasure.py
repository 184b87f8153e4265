"""Erasure of removed templates from the index files on disk (deletion on request, retention purges).

The database is the truth, so the rule is simple: a snapshot file may hold only template ids that are still
rows of the Template table, and no tombstones. `index_snapshots_erase` rewrites every snapshot file of the
named galleries to that rule, under the same lock that snapshot writers take:

- the vectors of every id no longer in the database, and of every tombstone, are removed from the index
  (flat storage compacted; the PQ layout rebuilt and retrained, see search.index.snapshots.index_without);
- the file is written to a temporary file, fsynced and renamed over the old one (atomic on POSIX), and the
  temporary files a crashed writer left behind are deleted (they are snapshots too);
- a file of another epoch or of a pack the gallery no longer indexes is deleted (it would never be loaded);
- if anything fails, the file is deleted: the index is then rebuilt from the database at the next search,
  which is slower but never leaves a removed vector on disk.

The header keeps its version: the change log after it still replays the removals (a no-op on ids that are
gone). search.galleries calls this once the removal commits; gallery_purge_expired also sweeps every gallery
each day, which bounds how long a vector can outlive its row if a process died between commit and rewrite.
Writers of new snapshots catch up under the lock and drop tombstones before writing (search.index.live), so
a removal is never written back.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from search.index.live import index_dir, snapshot_path
from search.index.snapshots import index_ids, index_without, snapshot_read, snapshot_write
from search.models import IndexState, Template

logger = logging.getLogger(__name__)


def gallery_index_folder(gallery_id: int) -> Path:
    return index_dir() / f"gallery-{gallery_id}"


def _live_ids(gallery_id: int, pack_key: str) -> np.ndarray:
    rows = (
        Template.objects.filter(gallery_id=gallery_id, pack_key=pack_key)
        .values_list("pk", flat=True)
        .iterator(chunk_size=50_000)
    )
    return np.fromiter(rows, dtype=np.int64)


def _temporaries_remove(path: Path) -> int:
    """Half-written snapshots of `path` left by a writer that died (writers hold the lock while writing)."""
    removed = 0
    for stray in path.parent.glob(f".{path.name}.*.tmp"):
        stray.unlink(missing_ok=True)
        removed += 1
    return removed


def _erase_file(path: Path, gallery_id: int) -> str:
    """Rewrite one snapshot without removed vectors; returns what was done (for logs and tests)."""
    read = snapshot_read(path)
    if read is None:
        return "absent"
    header, index = read
    state = IndexState.objects.filter(gallery_id=gallery_id, pack_key=header.pack_key).first()
    if header.gallery_id != gallery_id or state is None or str(state.epoch) != header.epoch:
        path.unlink(missing_ok=True)
        return "deleted (stale)"
    ids = index_ids(index)
    dead = ids[~np.isin(ids, _live_ids(gallery_id, header.pack_key))]
    remove = np.union1d(dead, np.asarray(header.tombstones, dtype=np.int64))
    if not len(remove):
        return "clean"
    index = index_without(header.mode, index, remove)
    header.ntotal = int(index.ntotal)
    header.tombstones = []
    snapshot_write(path, header, index)
    return f"rewritten without {len(remove)}"


def gallery_snapshots_erase(gallery_id: int) -> dict[str, str]:
    """Every snapshot file of one gallery rewritten without removed vectors (or deleted); per file, the outcome."""
    folder = gallery_index_folder(gallery_id)
    outcomes: dict[str, str] = {}
    if not folder.is_dir():
        return outcomes
    packs = IndexState.objects.filter(gallery_id=gallery_id).values_list("pack_key", flat=True)
    paths = {snapshot_path(gallery_id, pack_key) for pack_key in packs}
    paths |= set(folder.glob("*.faiss"))
    # ".<name>.<pid>.<uuid>.tmp": a temporary left by a writer that died, perhaps with no snapshot beside it.
    paths |= {folder / stray.name[1:].removesuffix(".tmp").rsplit(".", 2)[0] for stray in folder.glob(".*.tmp")}
    for path in sorted(paths):
        with open(path.with_suffix(".lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                _temporaries_remove(path)
                outcomes[path.name] = _erase_file(path, gallery_id)
            except Exception:
                # Never leave the vectors: without the file the index is rebuilt from the database.
                logger.exception("could not rewrite index snapshot %s; deleting it", path)
                path.unlink(missing_ok=True)
                outcomes[path.name] = "deleted (rewrite failed)"
    return outcomes


def index_snapshots_erase(*, gallery_ids: Iterable[int] | None = None) -> dict[int, dict[str, str]]:
    """Erase removed vectors from the snapshots of the given galleries, or of every gallery folder on disk."""
    if gallery_ids is None:
        root = index_dir()
        found = sorted(
            int(folder.name.removeprefix("gallery-"))
            for folder in (root.glob("gallery-*") if root.is_dir() else [])
            if folder.is_dir() and folder.name.removeprefix("gallery-").isdigit()
        )
        gallery_ids = found
    return {gallery_id: gallery_snapshots_erase(gallery_id) for gallery_id in sorted(set(gallery_ids))}
