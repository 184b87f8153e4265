"""FAISS index construction and the snapshot format. Plain Python, no Django.

Memory layout (per template, 128-d): the vector is held once, in half precision (IndexScalarQuantizer
QT_fp16, 256 bytes), never as float32 (512 bytes), and ids are a plain array (IndexIDMap, 8 bytes; not
IndexIDMap2, whose reverse hash map costs ~40 bytes more a template). So a search node holds about
264 bytes a template in exact mode and 296 in approximate mode (+32 bytes of PQ codes): ~2.6 / ~3.0 GB at
10M. Half precision rounds a unit vector's components to 11 significant bits (score error ~5e-4); the search
service re-scores the hits it returns in float32 from the database (search.execution), so the scores people
see are exact.

A snapshot is one stream: magic, a JSON header (gallery, pack, epoch, version, mode, count), the template ids
(int64) and the serialised FAISS index (without its id map). It is written and read as a stream (FAISS's
callback IO), so neither side ever holds a second in-memory copy of a multi-gigabyte index; where snapshots
are kept, and how they are named so that no lock is needed, is search.index.store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import faiss
import numpy as np

MAGIC = b"RFRIDX2\n"
EXACT = "exact"
APPROXIMATE = "approximate"
# Approximate mode: 4-bit product quantisation scanned with SIMD ("fast scan"), then an exact re-rank of the
# best PQ candidates from the half-precision vectors the index also stores (IndexRefine over SQfp16).
PQ_BITS = 4
# PQ candidates re-ranked per shortlist slot (the shortlist is max(2K, K+64), so ~2,300 at K=50).
REFINE_FACTOR = 20
# Below this many templates an approximate gallery keeps flat (exact) storage: PQ needs training vectors,
# and exact search is as fast as the approximate one there. A gallery that grows past it is converted
# (trained on its own vectors) at the next catch-up, rebuild or load.
APPROX_MIN_TEMPLATES = 20_000
PQ_TRAIN_SAMPLE = 200_000
CHUNK = 100_000


@dataclass
class SnapshotHeader:
    gallery_id: int
    pack_key: str
    epoch: str
    version: int
    mode: str
    dim: int
    ntotal: int
    tombstones: list[int] = field(default_factory=list)


def pq_subquantizers(dim: int) -> int:
    """Two dimensions per 4-bit sub-quantiser (32 bytes per 128-d template); one where dim is odd."""
    return dim // 2 if dim % 2 == 0 else dim


def _vector_store(dim: int) -> faiss.Index:
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def new_faiss_index(mode: str, dim: int) -> faiss.Index:
    """IndexIDMap over half-precision flat storage: exact mode, and approximate galleries below
    APPROX_MIN_TEMPLATES."""
    if mode not in (EXACT, APPROXIMATE):
        raise ValueError(f"unknown index mode {mode!r}")
    return faiss.IndexIDMap(_vector_store(dim))


def _sample(count: int, size: int) -> np.ndarray:
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size, replace=False))


def _new_approximate(dim: int, store: faiss.Index) -> faiss.Index:
    """PQ fast scan over every code, trained on a sample of `store`'s vectors, with every vector of `store`
    added, and `store` as its re-rank stage. No inverted file: on these templates the mate of a probe is often
    far from it (cosine ~0.5), in another k-means cell, so IVF1024 lost 8-30% of mates at 2M when scanning
    3-12% of cells (docs/galleries-and-index.md); scanning every 32-byte code keeps them."""
    count = int(store.ntotal)
    base = faiss.index_factory(dim, f"PQ{pq_subquantizers(dim)}x{PQ_BITS}fs", faiss.METRIC_INNER_PRODUCT)
    rows = _sample(count, PQ_TRAIN_SAMPLE)
    training = np.vstack([store.reconstruct_batch(rows[i : i + CHUNK]) for i in range(0, len(rows), CHUNK)])
    base.train(np.ascontiguousarray(training, dtype=np.float32))
    del training
    for start in range(0, count, CHUNK):
        base.add(store.reconstruct_n(start, min(CHUNK, count - start)))
    refine = faiss.IndexRefine(base, store)
    refine.k_factor = REFINE_FACTOR
    refine.own_fields = False  # python holds base and store (faiss's wrapper keeps references)
    return refine


def _with_ids(inner: faiss.Index, ids: np.ndarray) -> faiss.Index:
    """An IndexIDMap over a filled index (FAISS only wraps empty ones, so the inner index is set after)."""
    mapped: Any = faiss.IndexIDMap(_vector_store(int(inner.d)))
    mapped.index = inner
    mapped.referenced_objects = [inner]  # keeps the inner index alive as long as the map
    mapped.own_fields = False
    mapped.ntotal = inner.ntotal
    mapped.is_trained = inner.is_trained
    faiss.copy_array_to_vector(np.ascontiguousarray(ids, dtype=np.int64), mapped.id_map)
    return mapped


def index_from_chunks(mode: str, dim: int, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> faiss.Index:
    """An index built from (ids, float32 vectors) chunks; only one chunk is ever held in float32."""
    store = _vector_store(dim)
    ids: list[np.ndarray] = []
    for chunk_ids, vectors in chunks:
        if len(chunk_ids):
            store.add(np.ascontiguousarray(vectors, dtype=np.float32))
            ids.append(np.asarray(chunk_ids, dtype=np.int64))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    if mode == APPROXIMATE and len(all_ids) >= APPROX_MIN_TEMPLATES:
        return _with_ids(_new_approximate(dim, store), all_ids)
    return _with_ids(store, all_ids)


def build_faiss_index(mode: str, dim: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(ids), CHUNK):
            yield ids[start : start + CHUNK], vectors[start : start + CHUNK]

    return index_from_chunks(mode, dim, chunks())


def inner_index(index: faiss.Index) -> Any:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def vector_store(index: faiss.Index) -> Any:
    """The half-precision store of every vector (the index itself when flat, the re-rank stage otherwise)."""
    inner = inner_index(index)
    if isinstance(inner, faiss.IndexRefine):
        return faiss.downcast_index(inner.refine_index)
    return inner


def is_flat(index: faiss.Index) -> bool:
    return isinstance(inner_index(index), faiss.IndexScalarQuantizer)


def layout_current(mode: str, index: faiss.Index) -> bool:
    """Whether a loaded index has the layout this code builds for the mode."""
    if not isinstance(index, faiss.IndexIDMap):
        return False
    inner = inner_index(index)
    if mode == APPROXIMATE and isinstance(inner, faiss.IndexRefine):
        base = faiss.downcast_index(inner.base_index)
        store = faiss.downcast_index(inner.refine_index)
        return isinstance(base, faiss.IndexPQFastScan) and isinstance(store, faiss.IndexScalarQuantizer)
    return isinstance(inner, faiss.IndexScalarQuantizer)


def index_ids(index: faiss.Index) -> np.ndarray:
    """The template ids an IndexIDMap holds, in storage order."""
    mapped: Any = index
    return faiss.vector_to_array(mapped.id_map).astype(np.int64)


def index_chunks(index: faiss.Index, keep: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, float32 vectors) of the index in chunks, optionally only the positions where `keep` is true."""
    ids = index_ids(index)
    store = vector_store(index)
    for start in range(0, len(ids), CHUNK):
        stop = min(start + CHUNK, len(ids))
        vectors = store.reconstruct_n(start, stop - start)
        if keep is None:
            yield ids[start:stop], vectors
        else:
            yield ids[start:stop][keep[start:stop]], vectors[keep[start:stop]]


def upgrade_if_grown(mode: str, index: faiss.Index) -> faiss.Index | None:
    """An approximate gallery's flat index that has grown past APPROX_MIN_TEMPLATES, rebuilt as PQ + re-rank
    from its own vectors and ids (None: nothing to do)."""
    if mode != APPROXIMATE or index.ntotal < APPROX_MIN_TEMPLATES or not is_flat(index):
        return None
    return index_from_chunks(mode, int(index.d), index_chunks(index))


def index_add(mode: str, index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Append templates: the codes (if any) and the re-rank store grow together, the id map with them."""
    inner = inner_index(index)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if isinstance(inner, faiss.IndexRefine):
        faiss.downcast_index(inner.base_index).add(vectors)
        faiss.downcast_index(inner.refine_index).add(vectors)
        inner.ntotal = inner.base_index.ntotal
        mapped: Any = index
        faiss.copy_array_to_vector(np.concatenate([index_ids(index), ids.astype(np.int64)]), mapped.id_map)
        index.ntotal = inner.ntotal
    else:
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))


def index_without(mode: str, index: faiss.Index, remove: np.ndarray) -> faiss.Index:
    """The index with the given ids physically gone, so that no copy of their vectors is left in memory that
    a snapshot would write. Flat storage is rebuilt without them; the PQ layout is rebuilt and retrained on what
    remains, because the PQ codes (and codebook) and the re-rank store are all derived from the vectors."""
    ids = index_ids(index)
    gone = np.isin(ids, np.asarray(remove, dtype=np.int64))
    if not gone.any():
        return index
    return index_from_chunks(mode, int(index.d), index_chunks(index, keep=~gone))


def set_refine(index: faiss.Index, k_factor: float) -> None:
    """PQ candidates re-ranked exactly per requested result (approximate layout only)."""
    inner = inner_index(index)
    if isinstance(inner, faiss.IndexRefine):
        inner.k_factor = float(k_factor)


def _header_bytes(header: SnapshotHeader) -> bytes:
    head = json.dumps(asdict(header), separators=(",", ":")).encode("utf-8")
    return MAGIC + len(head).to_bytes(8, "little") + head


def snapshot_write(handle: IO[bytes], header: SnapshotHeader, index: faiss.Index) -> None:
    """Stream a snapshot into an open binary file (no in-memory copy of the index)."""
    ids = index_ids(index)
    header.ntotal = len(ids)
    handle.write(_header_bytes(header))
    handle.write(ids.astype("<i8").tobytes())
    faiss.write_index(inner_index(index), faiss.PyCallbackIOWriter(handle.write))  # type: ignore[attr-defined]


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        part = read(min(left, 1 << 24))
        if not part:
            raise ValueError("index snapshot ends early")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def snapshot_read_header(handle: IO[bytes]) -> SnapshotHeader | None:
    if handle.read(len(MAGIC)) != MAGIC:
        return None
    size = int.from_bytes(handle.read(8), "little")
    return SnapshotHeader(**json.loads(handle.read(size)))


def snapshot_read_ids(handle: IO[bytes]) -> tuple[SnapshotHeader, np.ndarray] | None:
    header = snapshot_read_header(handle)
    if header is None:
        return None
    ids = np.frombuffer(_read_exactly(handle.read, 8 * header.ntotal), dtype="<i8").astype(np.int64)
    return header, ids


def snapshot_read(handle: IO[bytes]) -> tuple[SnapshotHeader, faiss.Index] | None:
    """The whole snapshot from an open binary file, streamed into the index (None: not a current snapshot)."""
    read = snapshot_read_ids(handle)
    if read is None:
        return None
    header, ids = read
    inner = faiss.read_index(faiss.PyCallbackIOReader(handle.read, 1 << 24))  # type: ignore[attr-defined]
    if inner.ntotal != header.ntotal:
        raise ValueError(f"snapshot header says {header.ntotal} vectors, index holds {inner.ntotal}")
    return header, _with_ids(inner, ids)
