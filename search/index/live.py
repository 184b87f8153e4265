"""The FAISS implementation of the gallery index (search.index.interface): one index per (gallery, model
pack), held by search nodes only (search.index.node), derived from Template rows.

`get_index()` is the node's handle. Before every search it reads the gallery's `IndexState` (the caller may
pass it, read with others in one query); if the node holds an older version it applies the `IndexChange` rows
after it (adds fetch the embeddings from the database, removes become tombstones filtered out of results),
and if it holds nothing, an index of another epoch or mode, or one too far behind (CATCH_UP_MAX changes),
it loads the newest stored snapshot of the epoch (search.index.store) and catches up from there, or builds
from the database when there is none. A node therefore sees a change made anywhere at its next search.

Why no change is missed: `index_changes_record` allocates versions under the IndexState row lock, which is
held until the change's transaction ends, so versions commit in order and without gaps (a rolled-back
transaction takes its version back with it). A node that reads version V can therefore fetch exactly the
V - held changes up to V; a build reads the version and the rows in one REPEATABLE READ snapshot. Callers
(search.execution) also filter hits against the database, so a deletion is effective the moment it commits,
on every node, caught up or not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from django.conf import settings
from django.db import connection, transaction

from search.index.interface import IndexStatus, IndexVersion
from search.index.node import index_load_check, is_search_node
from search.index.snapshots import (
    APPROXIMATE,
    REFINE_FACTOR,
    SnapshotHeader,
    index_add,
    index_from_chunks,
    index_without,
    is_flat,
    layout_current,
    set_refine,
    upgrade_if_grown,
)
from search.index.store import (
    StoredSnapshot,
    snapshot_delete,
    snapshot_fetch,
    snapshot_newest,
    snapshot_put,
    snapshots_list,
)
from search.models import Gallery, IndexChange, IndexState, Template

logger = logging.getLogger(__name__)

# A node that has applied this many changes since the newest stored snapshot writes a new one, so that a
# fresh node does not have to replay a long change log.
SNAPSHOT_AFTER_CHANGES = 5000
# A node further behind than this reloads (snapshot, else database) instead of replaying the log.
CATCH_UP_MAX = 200_000
# The change log is kept this far behind the newest snapshot, so a node a little behind can still replay it.
LOG_KEEP = CATCH_UP_MAX
BUILD_CHUNK = 50_000


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
    _dead: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)

    def dead(self) -> np.ndarray:
        """The tombstones as a sorted array (cached: it is used by every search)."""
        if self._dead is None or len(self._dead) != len(self.tombstones):
            self._dead = np.fromiter(sorted(self.tombstones), dtype=np.int64, count=len(self.tombstones))
        return self._dead


def _state(gallery_id: int, pack_key: str) -> IndexVersion | None:
    row = (
        IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key)
        .values_list("version", "epoch", "gallery__index_mode")
        .first()
    )
    if row is None:
        return None
    return IndexVersion(version=int(row[0]), epoch=str(row[1]), mode=str(row[2]))


class GalleryIndexes:
    """The in-memory indexes of this search node, kept in step with the database."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[int, str], LoadedIndex] = {}
        self._lock = threading.Lock()
        # One load at a time per gallery index: concurrent searches wait for it rather than build twice.
        self._loading: dict[tuple[int, str], threading.Lock] = {}

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    def held(self) -> list[LoadedIndex]:
        with self._lock:
            return list(self._loaded.values())

    # -- keeping up to date --------------------------------------------------------------------------
    def fresh(self, gallery_id: int, pack_key: str, state: IndexVersion | None = None) -> LoadedIndex | None:
        """This node's index for the gallery and pack at the database's current version (None: no index)."""
        state = state if state is not None else _state(gallery_id, pack_key)
        if state is None:
            return None
        key = (gallery_id, pack_key)
        current = self._current(key, state)
        if current is not None:
            return current
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            current = self._current(key, state)  # another thread may have loaded it meanwhile
            if current is not None:
                return current
            loaded = self._load(gallery_id, pack_key, state)
            with self._lock:
                self._loaded[key] = loaded
        return loaded

    def _current(self, key: tuple[int, str], state: IndexVersion) -> LoadedIndex | None:
        with self._lock:
            current = self._loaded.get(key)
        if current is None or current.epoch != state.epoch or current.mode != state.mode:
            return None
        with current.lock:
            if current.version >= state.version:
                return current
            if state.version - current.version <= CATCH_UP_MAX and self._catch_up(current, state.version):
                self._maybe_snapshot(current)
                return current
        return None

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
            elif template_id in added:
                del added[template_id]
            else:
                removed.add(template_id)
        if removed and not isinstance(loaded.index, _EmptyIndex):
            loaded.tombstones |= removed
        if added:
            ids, vectors = _fetch_vectors(list(added), loaded.dim)
            if len(ids) and isinstance(loaded.index, _EmptyIndex):
                loaded.dim = int(vectors.shape[1])
                loaded.index = index_from_chunks(loaded.mode, loaded.dim, iter([(ids, vectors)]))
            elif len(ids):
                index_add(loaded.mode, loaded.index, ids, vectors)
            upgraded = upgrade_if_grown(loaded.mode, loaded.index)
            if upgraded is not None:
                loaded.index = upgraded
                loaded.changes_since_snapshot += SNAPSHOT_AFTER_CHANGES  # persist the trained index
        loaded.version = target_version
        loaded.changes_since_snapshot += len(changes)
        return True

    def _load(self, gallery_id: int, pack_key: str, state: IndexVersion) -> LoadedIndex:
        index_load_check()
        stored_now = snapshots_list(gallery_id, pack_key)
        for stored in [s for s in stored_now if s.epoch == state.epoch and s.mode == state.mode][:2]:
            # The newest first; if it was deleted between the listing and the read, the next one.
            if stored.version > state.version:
                continue  # written by a node that saw a version this read does not: build instead
            loaded = self._from_snapshot(gallery_id, pack_key, stored, state)
            if loaded is not None:
                return loaded
        loaded = self._build_from_database(gallery_id, pack_key)
        self.write_snapshot(loaded)
        return loaded

    def _from_snapshot(
        self, gallery_id: int, pack_key: str, stored: StoredSnapshot, state: IndexVersion
    ) -> LoadedIndex | None:
        try:
            read = snapshot_fetch(stored)
        except Exception:  # a damaged or foreign object: the database is the truth
            logger.exception("could not read index snapshot %s; building from the database", stored.name)
            return None
        if read is None or read[0].mode != state.mode or not layout_current(read[0].mode, read[1]):
            return None
        header, index = read
        loaded = LoadedIndex(
            gallery_id=gallery_id,
            pack_key=pack_key,
            epoch=header.epoch,
            version=header.version,
            mode=header.mode,
            dim=header.dim,
            index=index,
        )
        upgraded = upgrade_if_grown(loaded.mode, loaded.index)
        if upgraded is not None:
            loaded.index = upgraded
            loaded.changes_since_snapshot += SNAPSHOT_AFTER_CHANGES
        if header.version == state.version or self._catch_up(loaded, state.version):
            self._maybe_snapshot(loaded)
            return loaded
        return None

    @staticmethod
    def _build_from_database(gallery_id: int, pack_key: str) -> LoadedIndex:
        with _consistent_read():
            row = IndexState.objects.select_related("gallery").get(gallery_id=gallery_id, pack_key=pack_key)
            first = Template.objects.filter(gallery_id=gallery_id, pack_key=pack_key).values_list("embedding")[:1]
            sample = first.first()
            dim = len(bytes(sample[0])) // 4 if sample else 0
            index = (
                index_from_chunks(row.gallery.index_mode, dim, _vector_chunks(gallery_id, pack_key, dim))
                if dim
                else _EmptyIndex()
            )
        return LoadedIndex(
            gallery_id=gallery_id,
            pack_key=pack_key,
            epoch=str(row.epoch),
            version=row.version,
            mode=row.gallery.index_mode,
            dim=dim,
            index=index,
        )

    # -- snapshots -----------------------------------------------------------------------------------
    def _maybe_snapshot(self, loaded: LoadedIndex) -> None:
        if loaded.changes_since_snapshot >= SNAPSHOT_AFTER_CHANGES:
            self.write_snapshot(loaded)

    def write_snapshot(self, loaded: LoadedIndex) -> bool:
        """Store the index unless a snapshot of this version or a newer one of the same epoch is stored.

        The index is first brought up to the database's version and its tombstones dropped from storage, so a
        snapshot never holds a vector whose row a committed removal deleted. A removal that commits while the
        snapshot is uploading is caught after it (its change is in the log): the snapshot is deleted again.
        """
        if isinstance(loaded.index, _EmptyIndex):
            return False
        with loaded.lock:
            state = _state(loaded.gallery_id, loaded.pack_key)
            if state is None or state.epoch != loaded.epoch or state.mode != loaded.mode:
                return False
            if state.version > loaded.version and not self._catch_up(loaded, state.version):
                return False  # the log was pruned under us: a newer snapshot is stored already
            newest = snapshot_newest(loaded.gallery_id, loaded.pack_key, loaded.epoch, loaded.mode)
            if newest is not None and newest.version >= loaded.version:
                loaded.changes_since_snapshot = 0
                return False
            if loaded.tombstones:
                removed = np.fromiter(loaded.tombstones, dtype=np.int64, count=len(loaded.tombstones))
                loaded.index = index_without(loaded.mode, loaded.index, removed)
                loaded.tombstones = set()
            if loaded.index.ntotal == 0:
                return False
            header = SnapshotHeader(
                gallery_id=loaded.gallery_id,
                pack_key=loaded.pack_key,
                epoch=loaded.epoch,
                version=loaded.version,
                mode=loaded.mode,
                dim=loaded.dim,
                ntotal=int(loaded.index.ntotal),
            )
            stored = snapshot_put(header, loaded.index)
            loaded.changes_since_snapshot = 0
        if stored is None:
            return False
        removed_since = IndexChange.objects.filter(
            gallery_id=loaded.gallery_id,
            pack_key=loaded.pack_key,
            version__gt=loaded.version,
            op=IndexChange.Op.REMOVE,
        ).exists()
        if removed_since:
            snapshot_delete(stored)  # the removal's erasure may have run before the upload finished
            return False
        for other in snapshots_list(loaded.gallery_id, loaded.pack_key):
            if other.epoch != loaded.epoch or other.mode != loaded.mode or other.version < loaded.version:
                snapshot_delete(other)
        # Nodes within LOG_KEEP of this snapshot can still replay the log; further behind, they reload it.
        IndexChange.objects.filter(
            gallery_id=loaded.gallery_id, pack_key=loaded.pack_key, version__lte=loaded.version - LOG_KEEP
        ).delete()
        return True

    def save(self, gallery_id: int, pack_key: str) -> bool:
        loaded = self.fresh(gallery_id, pack_key)
        return loaded is not None and self.write_snapshot(loaded)

    # -- the interface: sync, rebuild, status, search --------------------------------------------------
    def sync(self, gallery_id: int, pack_key: str) -> LoadedIndex | None:
        return self.fresh(gallery_id, pack_key)

    def rebuild(self, gallery_id: int, pack_key: str) -> LoadedIndex | None:
        """Start a new epoch from the database: every node drops what it holds and reloads (this one now, if
        it is a search node; the others at their next search)."""
        with transaction.atomic():
            updated = IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key).update(epoch=uuid.uuid4())
        if not updated:
            return None
        return self.fresh(gallery_id, pack_key)

    def status(self, gallery_id: int, pack_key: str) -> IndexStatus:
        state = _state(gallery_id, pack_key)
        with self._lock:
            held = self._loaded.get((gallery_id, pack_key))
        newest = snapshot_newest(gallery_id, pack_key, state.epoch, state.mode) if state is not None else None
        return IndexStatus(
            gallery_id=gallery_id,
            pack_key=pack_key,
            database_version=state.version if state is not None else 0,
            held_version=held.version if held is not None else None,
            templates=held.size if held is not None else 0,
            tombstones=len(held.tombstones) if held is not None else 0,
            snapshot_version=newest.version if newest is not None else None,
        )

    def search(
        self,
        gallery_id: int,
        pack_key: str,
        queries: np.ndarray,
        k: int,
        *,
        refine: float | None = None,
        state: IndexVersion | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, template ids) per query row, best first (ties: lower id first); -1 ids pad."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        empty = (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        loaded = self.fresh(gallery_id, pack_key, state)
        if loaded is None or loaded.size <= 0:
            return empty
        if queries.shape[1] != loaded.dim:
            raise ValueError(f"template has {queries.shape[1]} dimensions, the index {loaded.dim}")
        with loaded.lock:
            dead = loaded.dead()
            if loaded.mode == APPROXIMATE and not is_flat(loaded.index):
                # A shortlist longer than k, so tombstoned ids can be absorbed. The PQ scan proposes refine x
                # shortlist candidates, re-scored from the stored vectors and sorted: the exact re-rank.
                fetch = max(2 * k, k + 64) + len(dead)
                set_refine(loaded.index, refine or REFINE_FACTOR)
            else:
                fetch = k + len(dead)
            scores, ids = loaded.index.search(queries, min(fetch, int(loaded.index.ntotal)))
        if len(dead):
            gone = np.isin(ids, dead)
            scores = np.where(gone, -np.inf, scores)
            ids = np.where(gone, -1, ids)
        order = np.lexsort((ids, -scores), axis=1)[:, :k]
        return _pad(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), k)


class _EmptyIndex:
    """Stands in for a FAISS index of a gallery with no templates."""

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


def _vector_chunks(gallery_id: int, pack_key: str, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every template of the gallery and pack, BUILD_CHUNK at a time (only one chunk in float32 at once)."""
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
        if len(ids) == BUILD_CHUNK:
            yield _chunk(ids, chunks, dim)
            ids, chunks = [], []
    if ids:
        yield _chunk(ids, chunks, dim)


def _chunk(ids: list[int], chunks: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), -1)
    if vectors.shape[1] != dim:
        raise ValueError(f"stored templates have {vectors.shape[1]} dimensions, the index {dim}")
    return np.asarray(ids, dtype=np.int64), np.ascontiguousarray(vectors, dtype=np.float32)


_INDEXES = GalleryIndexes()
_threads_configured = False


def get_index() -> GalleryIndexes:
    """This node's gallery indexes (one per process). Loading one outside a search node is refused."""
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


def gallery_index_rebuild(*, gallery: Gallery) -> dict[str, int | None]:
    """Give every pack's index of a gallery a new epoch; a search node rebuilds it now (template counts per
    pack), any other process leaves it to the nodes, which rebuild at their next search (None)."""
    counts: dict[str, int | None] = {}
    for pack_key in index_pack_keys(gallery.pk):
        with transaction.atomic():
            IndexState.objects.filter(gallery_id=gallery.pk, pack_key=pack_key).update(epoch=uuid.uuid4())
        counts[pack_key] = None
        if is_search_node():
            loaded = get_index().fresh(gallery.pk, pack_key)
            counts[pack_key] = loaded.size if loaded is not None else 0
    return counts
