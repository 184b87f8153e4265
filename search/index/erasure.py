"""Erasure of removed templates from the stored index snapshots (deletion on request, retention purges).

The database is the truth, so the rule is simple: a stored snapshot may hold only template ids that are still
rows of the Template table. Nothing outside a search node loads an index (search.index.node), so erasure does
not rewrite snapshots where the removal happened; it deletes them, which is immediate and needs no index:

- `index_snapshots_erase(gallery_ids=...)`, once a removal commits: every stored snapshot of those galleries
  is deleted (all packs, all epochs), and a search node is asked (task `search.index_snapshot_write` on the
  search queue) to store a fresh one, written from its index after catching up, with the removed vectors
  dropped from storage first (search.index.live.write_snapshot). A node restarted before that builds from the
  database.
- `index_snapshots_sweep()`, daily (retention run) and by `manage.py index erase`: reads the ids of every
  stored snapshot (not the vectors) and deletes any snapshot holding an id that is no longer a Template row,
  or of an epoch the gallery no longer has; this bounds how long a vector can outlive its row in storage if a
  process died between a removal's commit and its erasure.

A snapshot being uploaded while a removal commits is deleted again by its writer (write_snapshot checks the
log after the upload), so a removal is never written back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from rfr.queues import TaskName, task_enqueue_on_commit
from search.index.store import (
    gallery_snapshots,
    index_storage,
    legacy_files,
    snapshot_delete,
    snapshot_fetch_ids,
    stored_gallery_ids,
)
from search.models import IndexState, Template

logger = logging.getLogger(__name__)


def gallery_snapshots_delete(gallery_id: int) -> dict[str, str]:
    """Delete every stored snapshot of one gallery; per snapshot, what was done (for logs and tests)."""
    outcomes: dict[str, str] = {}
    for _folder, stored in gallery_snapshots(gallery_id):
        snapshot_delete(stored)
        outcomes[stored.name] = "deleted"
    for name in legacy_files(gallery_id):
        index_storage().delete(name)
        outcomes[name] = "deleted (legacy)"
    return outcomes


def index_snapshots_erase(*, gallery_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """After a removal commits: delete the galleries' stored snapshots and ask a search node for fresh ones."""
    outcomes = {gallery_id: gallery_snapshots_delete(gallery_id) for gallery_id in sorted(set(gallery_ids))}
    for gallery_id in outcomes:
        for pack_key in IndexState.objects.filter(gallery_id=gallery_id).values_list("pack_key", flat=True):
            task_enqueue_on_commit(TaskName.INDEX_SNAPSHOT_WRITE, gallery_id, pack_key)
    return outcomes


def _live_ids(gallery_id: int, pack_key: str) -> np.ndarray:
    rows = (
        Template.objects.filter(gallery_id=gallery_id, pack_key=pack_key)
        .values_list("pk", flat=True)
        .iterator(chunk_size=50_000)
    )
    return np.fromiter(rows, dtype=np.int64)


def gallery_snapshots_sweep(gallery_id: int) -> dict[str, str]:
    """Delete the stored snapshots of one gallery that hold a removed id or belong to a stale epoch."""
    outcomes: dict[str, str] = {}
    for name in legacy_files(gallery_id):  # a previous release's snapshot file, lock or temporary
        index_storage().delete(name)
        outcomes[name] = "deleted (legacy)"
    states = {
        pack_key: (str(epoch), mode)
        for pack_key, epoch, mode in IndexState.objects.filter(gallery_id=gallery_id).values_list(
            "pack_key", "epoch", "gallery__index_mode"
        )
    }
    for _folder, stored in gallery_snapshots(gallery_id):
        try:
            read = snapshot_fetch_ids(stored)
            if read is None:
                outcomes[stored.name] = "absent"
                continue
            header, ids = read
            current = states.get(header.pack_key)
            # Stale: its contents or its name say another epoch or mode than the gallery index's now.
            named = (stored.epoch, stored.mode)
            if header.gallery_id != gallery_id or current != (header.epoch, header.mode) or current != named:
                snapshot_delete(stored)
                outcomes[stored.name] = "deleted (stale)"
            elif not np.isin(ids, _live_ids(gallery_id, header.pack_key)).all():
                snapshot_delete(stored)
                outcomes[stored.name] = "deleted (holds removed templates)"
            else:
                outcomes[stored.name] = "clean"
        except Exception:
            # Never leave the vectors: without the snapshot the index is rebuilt from the database.
            logger.exception("could not check index snapshot %s; deleting it", stored.name)
            snapshot_delete(stored)
            outcomes[stored.name] = "deleted (unreadable)"
    return outcomes


def index_snapshots_sweep(*, gallery_ids: Iterable[int] | None = None) -> dict[int, dict[str, str]]:
    """The erasure sweep of the given galleries' stored snapshots, or of every gallery in storage."""
    ids = stored_gallery_ids() if gallery_ids is None else gallery_ids
    return {gallery_id: gallery_snapshots_sweep(gallery_id) for gallery_id in sorted(set(ids))}
