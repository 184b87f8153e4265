"""The one gallery index interface: search, sync, rebuild, status. The seam for another vector engine.

search.execution and the index tasks use `index_backend()`, which returns the implementation named by
settings.RFR_INDEX_BACKEND (a dotted path to a callable returning it): by default the FAISS one
(search.index.live.get_index). pgvector with HNSW in the same PostgreSQL, Milvus or Qdrant would plug in here
with a class that answers these four calls from the engine's own collection (docs/galleries-and-index.md).
Whatever the implementation, the database stays the truth: hits are re-checked there (search.execution).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class IndexVersion:
    """What the database says a gallery index should be (read once per search, for every gallery)."""

    version: int
    epoch: str
    mode: str


@dataclass(frozen=True)
class IndexStatus:
    gallery_id: int
    pack_key: str
    database_version: int
    held_version: int | None  # this node's version (None: not loaded here)
    templates: int  # live templates this node holds
    tombstones: int
    snapshot_version: int | None  # the newest stored snapshot of the current epoch


class GalleryIndex(Protocol):
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
        """Top-k (scores, template ids) per query row, best first; -1 ids pad short lists."""
        ...

    def sync(self, gallery_id: int, pack_key: str) -> Any:
        """Bring this node's index up to the database's version (load, catch up or rebuild as needed)."""
        ...

    def rebuild(self, gallery_id: int, pack_key: str) -> Any:
        """Start a new epoch from the database: every node drops what it holds and reloads."""
        ...

    def status(self, gallery_id: int, pack_key: str) -> IndexStatus: ...


@cache
def _factory(path: str) -> Any:
    return import_string(path)


def index_backend() -> GalleryIndex:
    backend: GalleryIndex = _factory(settings.RFR_INDEX_BACKEND)()
    return backend
