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

import faiss
import numpy as np

MAGIC = b"RFRIDX1\n"
EXACT = "exact"
APPROXIMATE = "approximate"
HNSW_M = 32
# Tuned with bench.index on CelebA + LFW templates among Gaussian distractors (docs/galleries-and-index.md).
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 512


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


def new_faiss_index(mode: str, dim: int) -> faiss.Index:
    """Exact: IndexIDMap2 over IndexFlatIP. Approximate: IndexIDMap2 over HNSW (inner product, flat
    storage)."""
    if mode == EXACT:
        inner: faiss.Index = faiss.IndexFlatIP(dim)
    elif mode == APPROXIMATE:
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown index mode {mode!r}")
    return faiss.IndexIDMap2(inner)


def build_faiss_index(mode: str, dim: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    index = new_faiss_index(mode, dim)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def set_ef_search(index: faiss.Index, ef: int) -> None:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef


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
