"""Two reader processes loading the index while a third replaces it never fail or see a torn file."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np

from search.index.snapshots import SnapshotHeader, build_faiss_index, snapshot_read, snapshot_write

PER_VERSION = 200
VERSIONS = 40


def _vectors(version: int) -> tuple[np.ndarray, np.ndarray]:
    count = PER_VERSION * version
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((count, 128)).astype(np.float32)
    return np.arange(1, count + 1, dtype=np.int64), vectors


def _writer(path: str) -> None:
    for version in range(1, VERSIONS + 1):
        ids, vectors = _vectors(version)
        header = SnapshotHeader(
            gallery_id=1, pack_key="p", epoch="e", version=version, mode="exact", dim=128, ntotal=len(ids)
        )
        snapshot_write(Path(path), header, build_faiss_index("exact", 128, ids, vectors))
        time.sleep(0.05)  # leave the readers time to read each version


def _reader(path: str, deadline: float, results: multiprocessing.Queue, ready: Any) -> None:
    seen: list[int] = []
    ready.release()
    try:
        while time.monotonic() < deadline:
            read = snapshot_read(Path(path))
            if read is None:
                continue
            header, index = read
            id_map: Any = index.id_map  # type: ignore[attr-defined]  # IndexIDMap2 (stubs type Index)
            # The content must be exactly what the writer put in the file with this header.
            assert index.ntotal == PER_VERSION * header.version
            last = id_map.at(index.ntotal - 1) if index.ntotal else 0
            assert last == index.ntotal, (last, index.ntotal)
            _, found = index.search(np.ones((1, 128), np.float32), 3)
            assert (found >= 1).all()
            seen.append(header.version)
            if header.version == VERSIONS:
                break
        results.put(("ok", seen))
    except Exception as error:  # reported to the parent, which fails the test
        results.put(("error", repr(error)))


def test_readers_never_see_a_torn_index(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    path = str(tmp_path / "index.faiss")
    results: Any = context.Queue()
    deadline = time.monotonic() + 60
    ready = context.Semaphore(0)
    readers = [context.Process(target=_reader, args=(path, deadline, results, ready)) for _ in range(2)]
    writer = context.Process(target=_writer, args=(path,))
    for process in readers:
        process.start()
    for _ in readers:
        assert ready.acquire(timeout=60)
    writer.start()
    writer.join(90)
    outcomes = [results.get(timeout=90) for _ in readers]
    for process in readers:
        process.join(10)
    assert writer.exitcode == 0
    for status, detail in outcomes:
        assert status == "ok", detail
        assert detail and detail == sorted(detail), "a reader went back to an older version"
        assert detail[-1] == VERSIONS
        assert len(set(detail)) >= 5, "the reader did not overlap the writer"
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"
