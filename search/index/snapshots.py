"""FAISS index construction and the on-disk snapshot format. Plain Python, no Django.

A snapshot is one file: magic, a JSON header (gallery, pack, epoch, version, mode, tombstoned ids) and the
serialised FAISS index. It is written to a temporary file in the same folder, fsynced and moved over the
old one with os.replace, which is atomic on POSIX: a reader sees the old file or the new one, never a
half-written one.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

MAGIC = b"RFRIDX1\n"
EXACT = "exact"
APPROXIMATE = "approximate"
# Approximate mode: 4-bit product quantisation scanned with SIMD ("fast scan") over the whole gallery, then an
# exact re-rank of the best PQ candidates from the float32 vectors the index also stores (IndexRefineFlat).
# Tuned with bench.index on CelebA + LFW templates among 1M Gaussian distractors (docs/galleries-and-index.md).
PQ_BITS = 4
# PQ candidates re-ranked exactly per shortlist slot (the shortlist is max(2K, K+64), so ~2,300 at K=50).
REFINE_FACTOR = 20
# Below this many templates an approximate gallery keeps flat (exact) storage: PQ needs training vectors,
# and exact search is as fast as the approximate one there. A gallery that grows past it is converted
# (trained on its own vectors) at the next catch-up, rebuild or load.
APPROX_MIN_TEMPLATES = 20_000
PQ_TRAIN_SAMPLE = 200_000


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


def new_faiss_index(mode: str, dim: int) -> faiss.Index:
    """IndexIDMap2 over IndexFlatIP: exact mode, and approximate galleries below APPROX_MIN_TEMPLATES."""
    if mode not in (EXACT, APPROXIMATE):
        raise ValueError(f"unknown index mode {mode!r}")
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _new_pq_index(dim: int, training: np.ndarray) -> faiss.Index:
    inner = faiss.index_factory(dim, f"PQ{pq_subquantizers(dim)}x{PQ_BITS}fs,RFlat", faiss.METRIC_INNER_PRODUCT)
    if len(training) > PQ_TRAIN_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(len(training), PQ_TRAIN_SAMPLE, replace=False))
        training = training[rows]
    inner.train(np.ascontiguousarray(training, dtype=np.float32))
    refine: Any = faiss.downcast_index(inner)
    refine.k_factor = REFINE_FACTOR
    return faiss.IndexIDMap2(inner)


def build_faiss_index(mode: str, dim: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if mode == APPROXIMATE and len(ids) >= APPROX_MIN_TEMPLATES:
        index = _new_pq_index(dim, vectors)
    else:
        index = new_faiss_index(mode, dim)
    if len(ids):
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    return index


def is_flat(index: faiss.Index) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return isinstance(inner, faiss.IndexFlat)


def layout_current(mode: str, index: faiss.Index) -> bool:
    """Whether a loaded index has the layout this code builds for the mode (old HNSW snapshots do not)."""
    if not isinstance(index, faiss.IndexIDMap2):
        return False
    inner = faiss.downcast_index(index.index)
    if mode == APPROXIMATE and isinstance(inner, faiss.IndexRefineFlat):
        return isinstance(faiss.downcast_index(inner.base_index), faiss.IndexPQFastScan)
    return isinstance(inner, faiss.IndexFlatIP)


def upgrade_if_grown(mode: str, index: faiss.Index) -> faiss.Index | None:
    """An approximate gallery's flat index that has grown past APPROX_MIN_TEMPLATES, rebuilt as PQ + re-rank
    from its own vectors and ids (None: nothing to do)."""
    if mode != APPROXIMATE or index.ntotal < APPROX_MIN_TEMPLATES or not is_flat(index):
        return None
    mapped: Any = index  # IndexIDMap2 over IndexFlatIP (is_flat)
    ids = faiss.vector_to_array(mapped.id_map).astype(np.int64)
    vectors = mapped.index.reconstruct_n(0, mapped.ntotal)
    return build_faiss_index(mode, int(index.d), ids, vectors)


def index_ids(index: faiss.Index) -> np.ndarray:
    """The template ids an IndexIDMap2 holds, in storage order."""
    mapped: Any = index
    return faiss.vector_to_array(mapped.id_map).astype(np.int64)


def index_without(mode: str, index: faiss.Index, remove: np.ndarray) -> faiss.Index:
    """The index with the given ids physically gone, so that no copy of their vectors is left in memory that
    a snapshot would write. Flat storage removes them in place (and compacts it); the PQ layout is rebuilt
    from the exact vectors its re-rank stage keeps, retraining the codebook on what remains, because the PQ
    codes and the refine store are both derived from the removed vectors."""
    remove = np.asarray(remove, dtype=np.int64)
    ids = index_ids(index)
    gone = np.isin(ids, remove)
    if not gone.any():
        return index
    mapped: Any = index
    if is_flat(index):
        mapped.remove_ids(ids[gone])
        return index
    vectors = faiss.downcast_index(mapped.index).reconstruct_n(0, mapped.ntotal)
    keep = ~gone
    return build_faiss_index(mode, int(index.d), ids[keep], vectors[keep])


def set_refine(index: faiss.Index, k_factor: float) -> None:
    """PQ candidates re-ranked exactly per requested result (approximate layout only)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexRefine):
        inner.k_factor = float(k_factor)


def snapshot_write(path: Path, header: SnapshotHeader, index: faiss.Index) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = faiss.serialize_index(index)
    head = json.dumps(asdict(header), separators=(",", ":")).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC)
            handle.write(len(head).to_bytes(8, "little"))
            handle.write(head)
            handle.write(payload.data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def snapshot_read_header(path: Path) -> SnapshotHeader | None:
    try:
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                return None
            size = int.from_bytes(handle.read(8), "little")
            return SnapshotHeader(**json.loads(handle.read(size)))
    except FileNotFoundError:
        return None


def snapshot_read(path: Path) -> tuple[SnapshotHeader, faiss.Index] | None:
    """The whole snapshot, read in one go from one open file (a concurrent os.replace cannot tear it)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw.startswith(MAGIC):
        raise ValueError(f"{path} is not an rfr index snapshot")
    offset = len(MAGIC)
    size = int.from_bytes(raw[offset : offset + 8], "little")
    offset += 8
    header = SnapshotHeader(**json.loads(raw[offset : offset + size]))
    offset += size
    index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8, offset=offset))
    if index.ntotal != header.ntotal:
        raise ValueError(f"{path}: header says {header.ntotal} vectors, index holds {index.ntotal}")
    return header, index
