"""The derived index: incremental catch-up across processes' indexes, snapshots, approximate mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search import galleries
from search.execution import search_galleries
from search.index import live, snapshots
from search.index.changes import index_changes_record
from search.index.live import GalleryIndexes, get_index
from search.index.store import StoredSnapshot, snapshot_fetch, snapshot_newest
from search.models import Gallery, GalleryImage, IndexChange, IndexState, Subject, Template

pytestmark = pytest.mark.django_db(transaction=True)
PACK = "test-pack@1"


def _unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _stored(gallery: Gallery) -> StoredSnapshot | None:
    """The newest stored snapshot of the gallery's current epoch."""
    state = IndexState.objects.select_related("gallery").get(gallery=gallery, pack_key=PACK)
    return snapshot_newest(gallery.pk, PACK, str(state.epoch), state.gallery.index_mode)


def _add(gallery: Gallery, vectors: np.ndarray, prefix: str) -> list[int]:
    """Templates written the way enrolment writes them (row + logged change in one transaction)."""
    from django.db import transaction

    ids = []
    for number, vector in enumerate(vectors):
        with transaction.atomic():
            subject = Subject.objects.create(gallery=gallery, external_ref=f"{prefix}{number}")
            image = GalleryImage.objects.create(
                gallery=gallery, subject=subject, sha256=f"{prefix}{number:060d}"[:64], file="x.jpg"
            )
            template = Template.objects.create(
                gallery=gallery,
                subject=subject,
                image=image,
                pack_key=PACK,
                box=[0, 0, 1, 1],
                landmarks=[],
                embedding=vector.astype("<f4").tobytes(),
            )
            index_changes_record(gallery_id=gallery.pk, pack_key=PACK, changes=[(template.pk, "add")])
        ids.append(template.pk)
    return ids


@pytest.mark.parametrize("mode", [Gallery.IndexMode.EXACT, Gallery.IndexMode.APPROXIMATE])
def test_other_process_catches_up_without_rebuild(
    gallery_env: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gallery = galleries.gallery_create(name=f"g-{mode}", kind=Gallery.Kind.WATCHLIST, index_mode=mode)
    vectors = _unit_vectors(60, seed=1)
    ids = _add(gallery, vectors[:40], "a")
    worker_a, worker_b = GalleryIndexes(), GalleryIndexes()  # two processes' view of the same data
    scores, found = worker_a.search(gallery.pk, PACK, vectors[:40], 1)
    assert found[:, 0].tolist() == ids  # each vector finds itself
    assert np.allclose(scores[:, 0], 1.0, atol=2e-3)  # half-precision storage
    loaded_a = worker_a.fresh(gallery.pk, PACK)
    assert loaded_a is not None
    stored = _stored(gallery)
    assert stored is not None and stored.version == 40

    # Worker B enrols more and deletes one; worker A applies the delta in place at its next search.
    more = _add(gallery, vectors[40:], "b")
    galleries.gallery_image_delete(image=GalleryImage.objects.get(templates__pk=ids[0]), reason="test")
    _, found = worker_a.search(gallery.pk, PACK, vectors, 1)
    assert found[1:, 0].tolist() == ids[1:] + more
    assert found[0, 0] != ids[0]
    assert worker_a.fresh(gallery.pk, PACK) is loaded_a  # same object, caught up, not rebuilt
    assert loaded_a.version == IndexState.objects.get(gallery=gallery).version == 61
    assert loaded_a.size == 59

    # A fresh process loads the snapshot and replays only the log after it; a saved snapshot prunes the log
    # LOG_KEEP changes behind it, and replaces the older snapshots.
    _, found_b = worker_b.search(gallery.pk, PACK, vectors, 1)
    assert found_b[:, 0].tolist() == found[:, 0].tolist()
    get_index().save(gallery.pk, PACK)
    assert _stored(gallery).version == 61  # type: ignore[union-attr]
    assert IndexChange.objects.filter(gallery=gallery).count() == 61  # kept: within LOG_KEEP
    worker_c = GalleryIndexes()
    assert worker_c.fresh(gallery.pk, PACK).size == 59  # type: ignore[union-attr]

    # A process that is behind a pruned log reloads the snapshot rather than failing.
    monkeypatch.setattr(live, "LOG_KEEP", 0)
    _add(gallery, _unit_vectors(1, seed=9), "c")
    get_index().save(gallery.pk, PACK)
    assert not IndexChange.objects.filter(gallery=gallery).exists()
    assert [s.version for s in live.snapshots_list(gallery.pk, PACK)] == [62]  # older ones deleted
    assert worker_a.fresh(gallery.pk, PACK).size == 60  # type: ignore[union-attr]

    # A rebuild starts a new epoch: every process drops what it holds.
    rebuilt = get_index().rebuild(gallery.pk, PACK)
    assert rebuilt is not None and rebuilt.size == 60
    assert worker_a.fresh(gallery.pk, PACK) is not loaded_a


def test_approximate_search_matches_exact_on_a_small_gallery(gallery_env: Path) -> None:
    vectors = _unit_vectors(300, seed=3)
    exact = galleries.gallery_create(name="exact", kind=Gallery.Kind.CUSTODY)
    approx = galleries.gallery_create(name="approx", kind=Gallery.Kind.CUSTODY, index_mode="approximate")
    _add(exact, vectors, "e")
    _add(approx, vectors, "h")
    queries = _unit_vectors(20, seed=4)
    for query in queries:
        a = search_galleries(template=query, pack_key=PACK, gallery_ids=[exact.pk], top_k=10)
        b = search_galleries(template=query, pack_key=PACK, gallery_ids=[approx.pk], top_k=10)
        assert [h.subject_ref[1:] for h in a] == [h.subject_ref[1:] for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    both = search_galleries(template=queries[0], pack_key=PACK, gallery_ids=[exact.pk, approx.pk], top_k=4)
    assert {h.gallery_name for h in both} == {"exact", "approx"}


def test_rebuild_command(gallery_env: Path) -> None:
    from io import StringIO

    from django.core.management import call_command

    gallery = galleries.gallery_create(name="cmd", kind=Gallery.Kind.CUSTODY)
    _add(gallery, _unit_vectors(5, seed=5), "r")
    out = StringIO()
    call_command("index", "rebuild", "cmd", stdout=out)
    assert f"{PACK}: 5 templates" in out.getvalue()
    status = StringIO()
    call_command("index", "status", stdout=status)
    assert "db v5" in status.getvalue() and "snapshot v5" in status.getvalue()


def test_switching_index_mode_rebuilds_and_persists_the_new_mode(gallery_env: Path) -> None:
    gallery = galleries.gallery_create(name="switch", kind=Gallery.Kind.CUSTODY)
    vectors = _unit_vectors(20, seed=6)
    ids = _add(gallery, vectors, "m")
    assert get_index().fresh(gallery.pk, PACK).mode == "exact"  # type: ignore[union-attr]
    Gallery.objects.filter(pk=gallery.pk).update(index_mode=Gallery.IndexMode.APPROXIMATE)
    assert get_index().fresh(gallery.pk, PACK).mode == "approximate"  # type: ignore[union-attr]
    stored = _stored(gallery)
    read = snapshot_fetch(stored) if stored else None
    assert read is not None and read[0].mode == "approximate"
    _, found = GalleryIndexes().search(gallery.pk, PACK, vectors, 1)  # a new process loads that snapshot
    assert found[:, 0].tolist() == ids


def test_approximate_gallery_switches_to_pq_when_it_grows(gallery_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below APPROX_MIN_TEMPLATES the index is flat; past it, PQ fast scan + exact re-rank (same results)."""
    import faiss

    monkeypatch.setattr(snapshots, "APPROX_MIN_TEMPLATES", 400)
    vectors = _unit_vectors(600, seed=7)
    gallery = galleries.gallery_create(name="grow", kind=Gallery.Kind.CUSTODY, index_mode="approximate")
    ids = _add(gallery, vectors[:300], "p")
    loaded = get_index().fresh(gallery.pk, PACK)
    assert loaded is not None and snapshots.is_flat(loaded.index)
    ids += _add(gallery, vectors[300:], "q")
    galleries.gallery_image_delete(image=GalleryImage.objects.get(templates__pk=ids[5]), reason="test")
    scores, found = get_index().search(gallery.pk, PACK, vectors, 3)
    loaded = get_index().fresh(gallery.pk, PACK)
    assert loaded is not None and not snapshots.is_flat(loaded.index)  # trained at catch-up
    assert isinstance(faiss.downcast_index(loaded.index.index), faiss.IndexRefine)
    assert np.delete(found[:, 0], 5).tolist() == ids[:5] + ids[6:]  # each live template finds itself
    assert found[5, 0] != ids[5] and ids[5] not in found  # the deleted template is a tombstone
    exact = vectors @ vectors.T
    exact[:, 5] = -np.inf
    assert np.allclose(scores, -np.sort(-exact, axis=1)[:, :3], atol=2e-3)  # re-rank from half precision
    # A new process loads the trained snapshot, and a rebuild trains it again from the database.
    get_index().save(gallery.pk, PACK)
    other = GalleryIndexes().fresh(gallery.pk, PACK)
    assert other is not None and not snapshots.is_flat(other.index) and other.size == 599
    rebuilt = get_index().rebuild(gallery.pk, PACK)
    assert rebuilt is not None and not snapshots.is_flat(rebuilt.index) and rebuilt.size == 599
