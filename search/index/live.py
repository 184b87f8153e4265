"""The search index: one FAISS index per (gallery, model pack), derived from Template rows.

`get_index()` is the process's handle. Before every search it reads the gallery's `IndexState` (one small
query); if the process holds an older version it applies the `IndexChange` rows after it (adds fetch the
embeddings from the database, removes drop the ids), and if it holds nothing, or an index of another epoch
or mode, it loads the newest snapshot from settings.DATA_DIR / "index" and catches up from there, or builds
from the database when there is no usable snapshot. A worker therefore sees a change made by another
process at its next search, without a restart. Snapshots are written atomically (see search.index.snapshots).

Exact mode removes ids from the flat index. Approximate mode (PQ fast scan + exact re-rank, flat below
search.index.snapshots.APPROX_MIN_TEMPLATES) keeps removed ids in memory as tombstones that are filtered out
of results; no snapshot is written with them (a snapshot drops them from storage first). Callers
(search.execution) filter hits against the database as well, so a deletion is effective the moment it
commits; the files on disk are rewritten without the removed vectors once it commits (search.index.erasure).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from django.conf import settings
from django.db import connection, transaction

from search.index.snapshots import (
    APPROXIMATE,
    REFINE_FACTOR,
    SnapshotHeader,
    build_faiss_index,
    index_without,
    layout_current,
    set_refine,
    snapshot_read,
    snapshot_read_header,
    snapshot_write,
    upgrade_if_grown,
)
from search.models import Gallery, IndexChange, IndexState, Template

# A process that has applied this many changes since the last snapshot writes a new one, so that a fresh
# process does not have to replay a long change log.
SNAPSHOT_AFTER_CHANGES = 5000
BUILD_CHUNK = 20_000


def index_dir() -> Path:
    return Path(settings.DATA_DIR) / "index"


def snapshot_path(gallery_id: int, pack_key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", pack_key)[:80]
    digest = hashlib.sha256(pack_key.encode("utf-8")).hexdigest()[:10]
    return index_dir() / f"gallery-{gallery_id}" / f"{slug}-{digest}.faiss"


@contextlib.contextmanager
def _consistent_read() -> Iterator[None]:
    """One snapshot of the database for several queries (state version and the rows it describes)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        # Only the outermost transaction can choose its isolation level (inside one, the caller's holds).
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


@dataclass
class LoadedIndex:
    gallery_id: int
    pack_key: str
    epoch: str
    version: int
    mode: str
    dim: int
    index: Any  # faiss.Index, or _EmptyIndex when the gallery has no templates
    tombstones: set[int] = field(default_factory=set)
    changes_since_snapshot: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def size(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)


@dataclass(frozen=True)
class _State:
    version: int
    epoch: str
    mode: str


class GalleryIndexes:
    """The in-memory indexes of this process, kept in step with the database."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[int, str], LoadedIndex] = {}
        self._lock = threading.Lock()

    # -- state ---------------------------------------------------------------------------------------
    @staticmethod
    def _state(gallery_id: int, pack_key: str) -> _State | None:
        row = (
            IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key)
            .values_list("version", "epoch", "gallery__index_mode")
            .first()
        )
        if row is None:
            return None
        return _State(version=int(row[0]), epoch=str(row[1]), mode=str(row[2]))

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    # -- keeping up to date --------------------------------------------------------------------------
    def fresh(self, gallery_id: int, pack_key: str) -> LoadedIndex | None:
        """This process's index for the gallery and pack at the database's current version (None: empty)."""
        state = self._state(gallery_id, pack_key)
        if state is None:
            return None
        key = (gallery_id, pack_key)
        with self._lock:
            current = self._loaded.get(key)
        if current is not None and current.epoch == state.epoch and current.mode == state.mode:
            with current.lock:
                if current.version == state.version:
                    return current
                if current.version < state.version and self._catch_up(current, state.version):
                    self._maybe_snapshot(current)
                    return current
        loaded = self._load(gallery_id, pack_key, state)
        with self._lock:
            self._loaded[key] = loaded
        return loaded

    def _catch_up(self, loaded: LoadedIndex, target_version: int) -> bool:
        """Apply the change log from loaded.version to target_version; False if part of it was pruned."""
        changes = list(
            IndexChange.objects.filter(
                gallery_id=loaded.gallery_id,
                pack_key=loaded.pack_key,
                version__gt=loaded.version,
                version__lte=target_version,
            )
            .order_by("version")
            .values_list("version", "template_id", "op")
        )
        if len(changes) != target_version - loaded.version:
            return False
        added: dict[int, None] = {}
        removed: set[int] = set()
        for _version, template_id, op in changes:
            if op == IndexChange.Op.ADD:
                added[template_id] = None
                removed.discard(template_id)
            else:
                if template_id in added:
                    del added[template_id]
                else:
                    removed.add(template_id)
        empty = isinstance(loaded.index, _EmptyIndex)
        if removed and not empty:
            if loaded.mode == APPROXIMATE:
                loaded.tombstones |= removed
            else:
                loaded.index.remove_ids(np.fromiter(removed, dtype=np.int64, count=len(removed)))
        if added:
            ids, vectors = _fetch_vectors(list(added), loaded.dim)
            if len(ids) and empty:
                loaded.dim = int(vectors.shape[1])
                loaded.index = build_faiss_index(loaded.mode, loaded.dim, ids, vectors)
            elif len(ids):
                loaded.index.add_with_ids(vectors, ids)
            upgraded = upgrade_if_grown(loaded.mode, loaded.index)
            if upgraded is not None:
                loaded.index = upgraded
                loaded.changes_since_snapshot += SNAPSHOT_AFTER_CHANGES  # persist the trained index
        loaded.version = target_version
        loaded.changes_since_snapshot += len(changes)
        return True

    def _load(self, gallery_id: int, pack_key: str, state: _State) -> LoadedIndex:
        path = snapshot_path(gallery_id, pack_key)
        header = snapshot_read_header(path)
        if (
            header is not None
            and header.epoch == state.epoch
            and header.mode == state.mode
            and header.version <= state.version
        ):
            read = snapshot_read(path)
            if read is not None and layout_current(read[0].mode, read[1]):
                header, index = read
                loaded = LoadedIndex(
                    gallery_id=gallery_id,
                    pack_key=pack_key,
                    epoch=header.epoch,
                    version=header.version,
                    mode=header.mode,
                    dim=header.dim,
                    index=index,
                    tombstones=set(header.tombstones),
                )
                upgraded = upgrade_if_grown(loaded.mode, loaded.index)
                if upgraded is not None:
                    loaded.index = upgraded
                    loaded.changes_since_snapshot += SNAPSHOT_AFTER_CHANGES
                if header.version == state.version or self._catch_up(loaded, state.version):
                    self._maybe_snapshot(loaded)
                    return loaded
        loaded = self._build_from_database(gallery_id, pack_key)
        self.write_snapshot(loaded)
        return loaded

    @staticmethod
    def _build_from_database(gallery_id: int, pack_key: str) -> LoadedIndex:
        with _consistent_read():
            state = IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key).select_related("gallery")
            row = state.get()
            ids, vectors = _all_vectors(gallery_id, pack_key)
        dim = vectors.shape[1] if len(ids) else 0
        index = build_faiss_index(row.gallery.index_mode, dim or 1, ids, vectors) if dim else None
        return LoadedIndex(
            gallery_id=gallery_id,
            pack_key=pack_key,
            epoch=str(row.epoch),
            version=row.version,
            mode=row.gallery.index_mode,
            dim=dim,
            index=index if index is not None else _EmptyIndex(),
        )

    # -- snapshots -----------------------------------------------------------------------------------
    def _maybe_snapshot(self, loaded: LoadedIndex) -> None:
        if loaded.changes_since_snapshot >= SNAPSHOT_AFTER_CHANGES:
            self.write_snapshot(loaded)

    def write_snapshot(self, loaded: LoadedIndex) -> bool:
        """Persist the index unless the file already holds this version or a newer one of the same epoch.

        Under the file lock the index is first brought up to the database's version, and its tombstones are
        dropped from storage: a snapshot never writes back a vector that a committed removal took out of the
        files (search.index.erasure), nor one of another epoch or mode."""
        if isinstance(loaded.index, _EmptyIndex):
            return False
        path = snapshot_path(loaded.gallery_id, loaded.pack_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock_file, loaded.lock:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            state = self._state(loaded.gallery_id, loaded.pack_key)
            if state is None or state.epoch != loaded.epoch or state.mode != loaded.mode:
                return False
            if state.version > loaded.version and not self._catch_up(loaded, state.version):
                return False  # the log was pruned under us: a newer snapshot is on disk already
            if isinstance(loaded.index, _EmptyIndex):
                return False
            existing = snapshot_read_header(path)
            if (
                existing is not None
                and existing.epoch == loaded.epoch
                and existing.mode == loaded.mode
                and existing.version >= loaded.version
            ):
                loaded.changes_since_snapshot = 0
                return False
            if loaded.tombstones:
                removed = np.fromiter(loaded.tombstones, dtype=np.int64, count=len(loaded.tombstones))
                loaded.index = index_without(loaded.mode, loaded.index, removed)
                loaded.tombstones = set()
            header = SnapshotHeader(
                gallery_id=loaded.gallery_id,
                pack_key=loaded.pack_key,
                epoch=loaded.epoch,
                version=loaded.version,
                mode=loaded.mode,
                dim=loaded.dim,
                ntotal=int(loaded.index.ntotal),
                tombstones=sorted(loaded.tombstones),
            )
            snapshot_write(path, header, loaded.index)
            loaded.changes_since_snapshot = 0
        # Changes up to the snapshot's version are in the file now; a process behind it reloads the file.
        IndexChange.objects.filter(
            gallery_id=loaded.gallery_id, pack_key=loaded.pack_key, version__lte=loaded.version
        ).delete()
        return True

    def save(self, gallery_id: int, pack_key: str) -> bool:
        loaded = self.fresh(gallery_id, pack_key)
        return loaded is not None and self.write_snapshot(loaded)

    def rebuild(self, gallery_id: int, pack_key: str) -> LoadedIndex | None:
        """Start a new epoch from the database: every process drops what it holds and reloads."""
        with transaction.atomic():
            updated = IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key).update(epoch=uuid.uuid4())
        if not updated:
            return None
        return self.fresh(gallery_id, pack_key)

    # -- search --------------------------------------------------------------------------------------
    def search(
        self, gallery_id: int, pack_key: str, queries: np.ndarray, k: int, *, refine: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, template ids) per query row, best first; -1 ids pad short lists."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        empty = (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        loaded = self.fresh(gallery_id, pack_key)
        if loaded is None or loaded.size <= 0:
            return empty
        if queries.shape[1] != loaded.dim:
            raise ValueError(f"template has {queries.shape[1]} dimensions, the index {loaded.dim}")
        with loaded.lock:
            if loaded.mode == APPROXIMATE:
                return self._search_approximate(loaded, queries, k, refine or REFINE_FACTOR)
            scores, ids = loaded.index.search(queries, min(k, int(loaded.index.ntotal)))
        return _pad(scores, ids, k)

    @staticmethod
    def _search_approximate(
        loaded: LoadedIndex, queries: np.ndarray, k: int, refine: float
    ) -> tuple[np.ndarray, np.ndarray]:
        # A shortlist longer than k, so tombstoned ids can be absorbed. The PQ scan proposes refine x
        # shortlist candidates, which are re-scored exactly from the stored float32 vectors, so shortlist
        # scores are exact inner products and sorting them is the exact re-rank.
        shortlist = min(int(loaded.index.ntotal), max(2 * k, k + 64) + len(loaded.tombstones))
        set_refine(loaded.index, refine)
        scores, ids = loaded.index.search(queries, shortlist)
        if loaded.tombstones:
            dead = np.isin(ids, np.fromiter(loaded.tombstones, dtype=np.int64, count=len(loaded.tombstones)))
            scores = np.where(dead, -np.inf, scores)
            ids = np.where(dead, -1, ids)
        order = np.lexsort((ids, -scores), axis=1)[:, :k]
        return _pad(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), k)


class _EmptyIndex:
    """Stands in for a FAISS index of a gallery whose templates were all removed."""

    ntotal = 0


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] >= k:
        return scores[:, :k], ids[:, :k]
    extra = k - scores.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf),
        np.pad(ids, ((0, 0), (0, extra)), constant_values=-1),
    )


def _fetch_vectors(template_ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids: list[int] = []
    chunks: list[bytes] = []
    for start in range(0, len(template_ids), BUILD_CHUNK):
        rows = Template.objects.filter(pk__in=template_ids[start : start + BUILD_CHUNK]).values_list("pk", "embedding")
        for pk, embedding in rows:
            ids.append(pk)
            chunks.append(bytes(embedding))
    vectors = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), -1) if ids else None
    if vectors is not None and vectors.shape[1] != dim and dim:
        raise ValueError(f"stored templates have {vectors.shape[1]} dimensions, the index {dim}")
    return np.asarray(ids, dtype=np.int64), (
        np.ascontiguousarray(vectors, dtype=np.float32) if vectors is not None else np.zeros((0, dim), np.float32)
    )


def _all_vectors(gallery_id: int, pack_key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = (
        Template.objects.filter(gallery_id=gallery_id, pack_key=pack_key)
        .order_by("pk")
        .values_list("pk", "embedding")
        .iterator(chunk_size=BUILD_CHUNK)
    )
    ids: list[int] = []
    chunks: list[bytes] = []
    for pk, embedding in rows:
        ids.append(pk)
        chunks.append(bytes(embedding))
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    vectors = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), -1)
    return np.asarray(ids, dtype=np.int64), np.ascontiguousarray(vectors, dtype=np.float32)


_INDEXES = GalleryIndexes()
_threads_configured = False


def get_index() -> GalleryIndexes:
    """The process's gallery indexes (one per process; safe to call anywhere)."""
    global _threads_configured
    if not _threads_configured:
        # FAISS parallelises over queries; one query at a time on 2 OpenMP threads measured 56 ms p50 at 1M
        # exact against 24 ms on one (docs/galleries-and-index.md), and one thread leaves the other core free.
        faiss.omp_set_num_threads(settings.RFR_SEARCH_THREADS)
        _threads_configured = True
    return _INDEXES


def index_pack_keys(gallery_id: int) -> list[str]:
    return list(
        IndexState.objects.filter(gallery_id=gallery_id).order_by("pack_key").values_list("pack_key", flat=True)
    )


def gallery_index_rebuild(*, gallery: Gallery) -> dict[str, int]:
    """Rebuild every pack's index of a gallery from the database; returns template counts per pack."""
    counts: dict[str, int] = {}
    for pack_key in index_pack_keys(gallery.pk):
        loaded = get_index().rebuild(gallery.pk, pack_key)
        counts[pack_key] = loaded.size if loaded is not None else 0
    return counts
