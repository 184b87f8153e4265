"""Deletion on request erases: after a subject is removed, its face templates are in no file under the index
storage (raw float32 or half-precision bytes, nor any vector the FAISS index stores), and its reference, source
path, image hash and template bytes are in no row of any table, except the removal's own audit record (which names the
reference, never the biometric). Real faces are enrolled through the real pipeline."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from cases.models import Candidate
from rfr.engine import active_engine
from search import enrolment, galleries
from search.execution import search_galleries
from search.index import snapshots, store
from search.index.changes import index_changes_record
from search.index.live import GalleryIndexes, get_index
from search.models import EnrolmentItem, Gallery, GalleryImage, Subject, Template
from tests.factories import build_case_world, celeba_identities, workbench_objects_create, write_subjects_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]

IDENTITIES = 4
IMAGES_EACH = 2
SYNTHETIC_FOR_PQ = 600  # enough templates past the lowered APPROX_MIN_TEMPLATES to train a PQ index


@dataclass
class Victim:
    ref: str
    paths: list[str]  # source paths as the enrolment items held them
    filenames: list[str]
    shas: list[str]
    template_ids: list[int]
    vectors: np.ndarray  # (n, 128) float32


@dataclass
class World:
    gallery: Gallery
    pack_key: str
    victim: Victim
    others: dict[str, np.ndarray]  # reference -> its templates, which must stay findable


def _enrol_world(faces_dir: Path, tmp_path: Path, *, mode: str) -> World:
    identities = list(celeba_identities(faces_dir).items())
    chosen = [(ref, files) for ref, files in identities if len(files) >= IMAGES_EACH + 1][:IDENTITIES]
    images_dir = faces_dir / "celeba" / "images"
    rows = [(file, f"CUST-ERASE-{ref}") for ref, files in chosen for file in files[:IMAGES_EACH]]
    gallery = galleries.gallery_create(name=f"erasure {mode}", kind=Gallery.Kind.CUSTODY, index_mode=mode)
    pack_key = active_engine().pack.key
    if mode == Gallery.IndexMode.APPROXIMATE:
        _synthetic_templates(gallery, pack_key, SYNTHETIC_FOR_PQ)
    (tmp_path / "csv").mkdir(exist_ok=True)  # the operator's CSV, outside rfr's data folder
    csv_path = write_subjects_csv(tmp_path / "csv" / "subjects.csv", rows)
    entries = enrolment.enrolment_entries_read(images_dir=images_dir, subjects_csv=csv_path)
    run = enrolment.enrolment_run_create(gallery=gallery, images_dir=images_dir, entries=entries, source="erasure")
    enrolment.enrolment_run_execute(run=run, in_process=True, progress=False)  # saves the snapshot at the end
    by_ref: dict[str, list[Template]] = {}
    for template in Template.objects.filter(gallery=gallery, subject__external_ref__startswith="CUST-ERASE-"):
        by_ref.setdefault(template.subject.external_ref, []).append(template)
    victim_ref = next(ref for ref, templates in sorted(by_ref.items()) if len(templates) == IMAGES_EACH)
    templates = by_ref[victim_ref]
    items = list(EnrolmentItem.objects.filter(subject_ref=victim_ref))
    assert items and all(item.path for item in items)
    victim = Victim(
        ref=victim_ref,
        paths=[item.path for item in items],
        filenames=[Path(item.path).name for item in items],
        shas=[template.image.sha256 for template in templates],
        template_ids=[template.pk for template in templates],
        vectors=np.stack([template.vector for template in templates]),
    )
    others = {
        ref: np.stack([template.vector for template in kept]) for ref, kept in by_ref.items() if ref != victim_ref
    }
    return World(gallery=gallery, pack_key=pack_key, victim=victim, others=others)


def _synthetic_templates(gallery: Gallery, pack_key: str, count: int) -> None:
    vectors = np.random.default_rng(11).standard_normal((count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with transaction.atomic():
        ids = []
        for number, vector in enumerate(vectors):
            subject = Subject.objects.create(gallery=gallery, external_ref=f"SYN-{number}")
            image = GalleryImage.objects.create(
                gallery=gallery, subject=subject, sha256=f"{number:064d}", file=f"synthetic/{number}.jpg"
            )
            template = Template.objects.create(
                gallery=gallery,
                subject=subject,
                image=image,
                pack_key=pack_key,
                box=[0, 0, 1, 1],
                landmarks=[],
                embedding=vector.astype("<f4").tobytes(),
            )
            ids.append((template.pk, "add"))
        index_changes_record(gallery_id=gallery.pk, pack_key=pack_key, changes=ids)


def _stored_vectors(path: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """Every vector a snapshot file's FAISS index stores, with its ids (the re-rank store of the PQ layout)."""
    with open(path, "rb") as handle:
        read = snapshots.snapshot_read(handle)
    assert read is not None
    index: Any = read[1]  # IndexIDMap over the flat or PQ + re-rank layout
    ids = snapshots.index_ids(index)
    store_index = snapshots.vector_store(index)
    vectors = store_index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
    return ids, vectors, index


def index_dir() -> Path:
    return Path(store.index_storage().path(""))


def _snapshot_files() -> list[Path]:
    return sorted(index_dir().rglob("*.rfridx"))


def _snapshot_path(gallery: Gallery, pack_key: str) -> Path:
    """The one stored snapshot of the gallery's index (its name changes with every version)."""
    found = store.snapshots_list(gallery.pk, pack_key)
    assert len(found) == 1, found
    return Path(store.index_storage().path(found[0].name))


def _files_under(folder: Path) -> Iterator[Path]:
    return (path for path in sorted(folder.rglob("*")) if path.is_file())


def _vector_in_files(folder: Path, vectors: np.ndarray) -> list[str]:
    # As stored by anyone: float32 (the database's copy) or half precision (the index's).
    needles = [vector.astype("<f4").tobytes() for vector in vectors]
    needles += [vector.astype("<f2").tobytes() for vector in vectors]
    return [str(path) for path in _files_under(folder) if any(n in path.read_bytes() for n in needles)]


def _database_scan(needles_text: list[str], needles_bytes: list[bytes]) -> list[tuple[str, str, Any]]:
    """Every (table, column, row id) where any needle occurs: a generic scan of every column of every table."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    if isinstance(value, memoryview | bytes | bytearray):
                        raw = bytes(value)
                        if any(needle in raw for needle in needles_bytes):
                            found.append((table, column, row[0]))
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
                    if any(needle in text for needle in needles_text):
                        found.append((table, column, row[0]))
    return found


def _removal_audit_ids() -> set[Any]:
    return set(AuditEvent.objects.filter(action="gallery.subject_delete").values_list("pk", flat=True))


@pytest.fixture
def pq_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    mode = str(request.param)
    if mode == Gallery.IndexMode.APPROXIMATE:
        monkeypatch.setattr(snapshots, "APPROX_MIN_TEMPLATES", 400)  # so the snapshot holds PQ codes
    return mode


@pytest.mark.parametrize("pq_threshold", [Gallery.IndexMode.EXACT, Gallery.IndexMode.APPROXIMATE], indirect=True)
def test_removed_subject_is_in_no_index_file_and_no_row(
    gallery_env: Path, faces_dir: Path, tmp_path: Path, pq_threshold: str
) -> None:
    world = _enrol_world(faces_dir, tmp_path, mode=pq_threshold)
    victim = world.victim
    get_index().save(world.gallery.pk, world.pack_key)  # force a snapshot that holds the victim
    path = _snapshot_path(world.gallery, world.pack_key)
    ids, stored, index = _stored_vectors(path)
    assert set(victim.template_ids) <= set(ids.tolist())
    assert _vector_in_files(index_dir(), victim.vectors), "the snapshot should hold the vectors before removal"
    if pq_threshold == Gallery.IndexMode.APPROXIMATE:
        assert not snapshots.is_flat(index), "the approximate snapshot should be in the PQ layout"
    # An older version left behind (a writer that died before deleting it): a snapshot like any other.
    shutil.copy(path, path.with_name("v000000000001.rfridx"))
    with open(path, "rb") as handle:
        header_before = snapshots.snapshot_read_header(handle)

    # A case whose search returned the victim: the candidate row must survive, without the reference.
    world_case = build_case_world()
    workbench_objects_create(world_case)
    search = world_case.extra["search"]
    candidate = Candidate.objects.create(
        search=search,
        rank=2,
        score=0.7,
        gallery_id=world.gallery.pk,
        gallery_name=world.gallery.name,
        subject_id=Subject.objects.get(external_ref=victim.ref).pk,
        subject_ref=victim.ref,
        template_id=victim.template_ids[0],
        image_id=Template.objects.get(pk=victim.template_ids[0]).image_id,
    )

    detail = galleries.subject_delete(
        subject=Subject.objects.get(gallery=world.gallery, external_ref=victim.ref),
        reason="deletion on application: no further action",
    )
    assert detail["templates_deleted"] == IMAGES_EACH
    assert detail["enrolment_items_scrubbed"] == len(victim.paths)
    assert detail["candidates_marked_removed"] == 1

    # Files: the bytes of the victim's templates are nowhere under the index storage (nor anywhere under the
    # data folder: images and crops included); the snapshots that held them are deleted, and a search node
    # (here in-process) has stored a fresh one from its index, without them.
    assert _vector_in_files(index_dir(), victim.vectors) == []
    assert _vector_in_files(gallery_env, victim.vectors) == []
    snapshot_files = _snapshot_files()
    assert len(snapshot_files) == 1 and path not in snapshot_files, "replaced by a fresh snapshot"
    with open(snapshot_files[0], "rb") as handle:
        header_after = snapshots.snapshot_read_header(handle)
    assert header_after is not None and header_before is not None
    assert header_after.version > header_before.version
    for snapshot in snapshot_files:
        ids, stored, index = _stored_vectors(snapshot)
        assert not set(victim.template_ids) & set(ids.tolist())
        distances = np.abs(stored[:, None, :] - victim.vectors[None, :, :]).max(axis=2)
        assert distances.size == 0 or float(distances.min()) > 1e-2, "a stored vector matches the victim's"
        if pq_threshold == Gallery.IndexMode.APPROXIMATE:
            assert not snapshots.is_flat(index), "the PQ layout is rebuilt, not dropped"

    # The database: no reference, source path, file name, image hash or template bytes in any row, except
    # the removal's audit record, which names the reference (the record of the deletion, not the biometric).
    needles_text = [victim.ref, *victim.paths, *victim.filenames, *victim.shas]
    needles_bytes = [vector.astype("<f4").tobytes() for vector in victim.vectors]
    found = _database_scan(needles_text, needles_bytes)
    removal_records = _removal_audit_ids()
    leftover = [hit for hit in found if not (hit[0] == "audit_auditevent" and hit[2] in removal_records)]
    assert leftover == []
    assert not [hit for hit in found if hit[0] == "audit_auditevent" and hit[1] not in {"detail", "target_repr"}]
    assert not _database_scan([], needles_bytes), "template bytes are in no row, audit included"

    # The bookkeeping keeps its counts, and the candidate its place in the case history, marked removed.
    items = EnrolmentItem.objects.filter(run__gallery=world.gallery, path="")
    assert items.count() == len(victim.paths)
    assert all(item.status == EnrolmentItem.Status.ENROLLED and not item.subject_ref for item in items)
    assert all(item.attributes == {} for item in items)
    candidate.refresh_from_db()
    assert candidate.subject_removed and candidate.subject_ref == "" and candidate.subject_removal == "request"

    # The fresh snapshot is what a fresh process loads, and it still finds everyone else.
    fresh = GalleryIndexes()
    for ref, vectors in world.others.items():
        _, found_ids = fresh.search(world.gallery.pk, world.pack_key, vectors, 1)
        assert set(found_ids[:, 0].tolist()) <= set(
            Template.objects.filter(subject__external_ref=ref).values_list("pk", flat=True)
        )
    hits = search_galleries(template=victim.vectors[0], pack_key=world.pack_key, gallery_ids=[world.gallery.pk])
    assert all(hit.subject_ref != victim.ref for hit in hits)


def test_a_failed_rewrite_deletes_the_snapshot_and_the_daily_sweep_bounds_a_missed_one(
    gallery_env: Path, faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _enrol_world(faces_dir, tmp_path, mode=Gallery.IndexMode.EXACT)
    path = _snapshot_path(world.gallery, world.pack_key)
    victim = world.victim
    assert path.is_file()

    # Storage that refuses the node's fresh snapshot: the old one is gone all the same; the next search rebuilds.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(store, "snapshot_write", refuse)
        image = GalleryImage.objects.get(pk=Template.objects.get(pk=victim.template_ids[0]).image_id)
        galleries.gallery_image_delete(image=image, reason="wrong person enrolled under this reference")
    assert _snapshot_files() == []
    assert _vector_in_files(index_dir(), victim.vectors[:1]) == []
    others = next(iter(world.others.values()))
    _, found = GalleryIndexes().search(world.gallery.pk, world.pack_key, others, 1)
    assert (found[:, 0] >= 0).all() and len(_snapshot_files()) == 1  # rebuilt from the database, and saved
    assert _vector_in_files(index_dir(), victim.vectors[:1]) == []

    # A process that died between the commit and the rewrite: the vectors are still on disk until the daily
    # retention run, which sweeps every gallery's snapshots (the documented bound).
    with monkeypatch.context() as patch:
        patch.setattr(galleries, "index_snapshots_erase", lambda **kwargs: {})
        galleries.subject_delete(subject=Subject.objects.get(external_ref=victim.ref), reason="deletion on application")
    assert _vector_in_files(index_dir(), victim.vectors[1:]) == [str(_snapshot_files()[0])]
    assert galleries.gallery_purge_expired() == {}  # no gallery has a retention rule; the sweep still runs
    assert _vector_in_files(index_dir(), victim.vectors) == []


def test_retention_purge_erases_at_once(gallery_env: Path, faces_dir: Path, tmp_path: Path) -> None:
    from datetime import timedelta

    from django.utils import timezone

    world = _enrol_world(faces_dir, tmp_path, mode=Gallery.IndexMode.EXACT)
    Gallery.objects.filter(pk=world.gallery.pk).update(retention_days=30)
    victim = world.victim
    old = (timezone.now() - timedelta(days=31)).date()
    GalleryImage.objects.filter(templates__pk__in=victim.template_ids).update(captured_at=old)
    assert _vector_in_files(index_dir(), victim.vectors)
    assert galleries.gallery_purge_expired(gallery=world.gallery) == {world.gallery.name: IMAGES_EACH}
    assert _vector_in_files(index_dir(), victim.vectors) == []
    assert not EnrolmentItem.objects.filter(subject_ref=victim.ref).exists()
    assert not EnrolmentItem.objects.filter(path__in=victim.paths).exists()
    assert not Subject.objects.filter(external_ref=victim.ref).exists()


def test_the_erase_command_sweeps_the_snapshots(gallery_env: Path, faces_dir: Path, tmp_path: Path) -> None:
    from io import StringIO

    from django.core.management import call_command

    world = _enrol_world(faces_dir, tmp_path, mode=Gallery.IndexMode.EXACT)
    path = _snapshot_path(world.gallery, world.pack_key)
    stale = path.parent.with_name(f"{uuid.uuid4()}_exact") / path.name
    stale.parent.mkdir()
    shutil.copy(path, stale)  # a snapshot of an epoch the gallery no longer has, holding every vector
    legacy = index_dir() / f"gallery-{world.gallery.pk}" / "pack-0123456789.faiss"
    legacy.write_bytes(b"RFRIDX1\n")  # a previous release's single-file snapshot (it may hold vectors)
    out = StringIO()
    call_command("index", "erase", world.gallery.name, stdout=out)
    assert f"{path.name}: clean" in out.getvalue() and "deleted (stale)" in out.getvalue()
    assert path.exists() and not stale.exists() and not legacy.exists()
    assert "pack-0123456789.faiss: deleted (legacy)" in out.getvalue()
