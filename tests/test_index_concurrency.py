"""Two reader processes loading the newest stored snapshot while a third stores new versions and deletes the old
ones (no lock anywhere) never fail, never see a torn snapshot and never go back to an older version."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

PER_VERSION = 200
VERSIONS = 30


def _django(folder: str) -> None:
    os.environ["RFR_INDEX_STORAGE_DIR"] = folder
    os.environ["DJANGO_SETTINGS_MODULE"] = "rfr.settings"
    import django

    django.setup()


def _writer(folder: str) -> None:
    _django(folder)
    from search.index.snapshots import SnapshotHeader, build_faiss_index
    from search.index.store import snapshot_delete, snapshot_put, snapshots_list

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((PER_VERSION * VERSIONS, 128)).astype(np.float32)
    for version in range(1, VERSIONS + 1):
        count = PER_VERSION * version
        ids = np.arange(1, count + 1, dtype=np.int64)
        header = SnapshotHeader(gallery_id=1, pack_key="p", epoch="e", version=version, mode="exact", dim=128, ntotal=0)
        stored = snapshot_put(header, build_faiss_index("exact", 128, ids, vectors[:count]))
        assert stored is not None
        for other in snapshots_list(1, "p"):
            if other.version < version:
                snapshot_delete(other)
        time.sleep(0.05)  # leave the readers time to read each version


def _reader(folder: str, deadline: float, results: Any, ready: Any) -> None:
    _django(folder)
    from search.index.store import snapshot_fetch, snapshots_list

    seen: list[int] = []
    ready.release()
    try:
        while time.monotonic() < deadline:
            listed = snapshots_list(1, "p")
            read = snapshot_fetch(listed[0]) if listed else None
            if read is None:
                continue  # none yet, or deleted between the listing and the read: list again
            header, index = read
            id_map: Any = index.id_map  # type: ignore[attr-defined]
            # The content must be exactly what the writer stored under this version.
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
    folder = str(tmp_path / "index")
    results: Any = context.Queue()
    deadline = time.monotonic() + 60
    ready = context.Semaphore(0)
    readers = [context.Process(target=_reader, args=(folder, deadline, results, ready)) for _ in range(2)]
    writer = context.Process(target=_writer, args=(folder,))
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
    assert not list(Path(folder).rglob("*.part")), "temporary files left behind"
    assert len(list(Path(folder).rglob("*.rfridx"))) == 1
