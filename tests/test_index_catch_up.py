"""Catch-up misses nothing whatever the timing: enrolment committing while a node builds, rolled-back changes
(no gap in the versions), and a node too far behind the log reloads by itself."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from django.db import connection, transaction

from search import galleries
from search.index import live
from search.index.changes import index_changes_record
from search.index.live import GalleryIndexes
from search.models import Gallery, GalleryImage, IndexChange, IndexState, Subject, Template

pytestmark = pytest.mark.django_db(transaction=True)
PACK = "test-pack@1"


def _unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _enrol_one(gallery: Gallery, vector: np.ndarray, ref: str) -> int:
    """One template, written the way enrolment writes it (row + logged change in one transaction)."""
    with transaction.atomic():
        subject = Subject.objects.create(gallery=gallery, external_ref=ref)
        image = GalleryImage.objects.create(gallery=gallery, subject=subject, sha256=f"{ref:0>64}"[:64], file="x")
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
    return template.pk


def _assert_holds_exactly_the_database(node: GalleryIndexes, gallery: Gallery) -> None:
    rows = list(Template.objects.filter(gallery=gallery).order_by("pk").values_list("pk", "embedding"))
    vectors = np.stack([np.frombuffer(bytes(embedding), "<f4") for _, embedding in rows])
    loaded = node.fresh(gallery.pk, PACK)
    assert loaded is not None and loaded.size == len(rows)
    assert loaded.version == IndexState.objects.get(gallery=gallery).version
    _, found = node.search(gallery.pk, PACK, vectors, 1)
    assert found[:, 0].tolist() == [pk for pk, _ in rows]  # every template finds itself


def test_enrolment_committing_while_nodes_build_is_never_missed(gallery_env: Path) -> None:
    gallery = galleries.gallery_create(name="busy", kind=Gallery.Kind.CUSTODY)
    vectors = _unit_vectors(160, seed=1)
    for number in range(40):
        _enrol_one(gallery, vectors[number], f"A{number}")
    done = threading.Event()
    errors: list[BaseException] = []

    def enrol_more() -> None:
        try:
            for number in range(40, len(vectors)):
                _enrol_one(gallery, vectors[number], f"A{number}")
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()
            done.set()

    writer = threading.Thread(target=enrol_more)
    writer.start()
    nodes = []
    while not done.is_set():  # fresh nodes building (or loading) while the writer commits
        node = GalleryIndexes()
        node.fresh(gallery.pk, PACK)
        nodes.append(node)
    writer.join()
    assert not errors
    assert len(nodes) >= 2, "no node loaded while the enrolment ran"
    for node in nodes:  # each catches up from wherever its build stood
        _assert_holds_exactly_the_database(node, gallery)


def test_a_rolled_back_change_leaves_no_gap_and_nothing_missed(gallery_env: Path) -> None:
    gallery = galleries.gallery_create(name="rollback", kind=Gallery.Kind.CUSTODY)
    vectors = _unit_vectors(4, seed=2)
    node = GalleryIndexes()
    _enrol_one(gallery, vectors[0], "R0")
    node.fresh(gallery.pk, PACK)
    with pytest.raises(RuntimeError), transaction.atomic():
        _enrol_one(gallery, vectors[1], "R1")
        raise RuntimeError("the enrolment fails after logging its change")
    _enrol_one(gallery, vectors[2], "R2")
    versions = list(IndexChange.objects.filter(gallery=gallery).order_by("version").values_list("version", flat=True))
    assert versions == [1, 2]  # the rolled-back version was taken back and given to the next change
    _assert_holds_exactly_the_database(node, gallery)


def test_a_writer_waiting_on_another_commits_after_it(gallery_env: Path) -> None:
    """Versions are allocated under the IndexState row lock, held to commit: a second writer waits, so a node
    that sees version V has every change up to V committed."""
    gallery = galleries.gallery_create(name="order", kind=Gallery.Kind.CUSTODY)
    vectors = _unit_vectors(3, seed=3)
    _enrol_one(gallery, vectors[0], "O0")
    node = GalleryIndexes()
    node.fresh(gallery.pk, PACK)
    first_logged, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                subject = Subject.objects.create(gallery=gallery, external_ref="O1")
                image = GalleryImage.objects.create(gallery=gallery, subject=subject, sha256="1" * 64, file="x")
                template = Template.objects.create(
                    gallery=gallery,
                    subject=subject,
                    image=image,
                    pack_key=PACK,
                    box=[0, 0, 1, 1],
                    landmarks=[],
                    embedding=vectors[1].astype("<f4").tobytes(),
                )
                index_changes_record(gallery_id=gallery.pk, pack_key=PACK, changes=[(template.pk, "add")])
                first_logged.set()
                release.wait(30)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert first_logged.wait(30)
    # The slow writer holds version 2 uncommitted: the node sees version 1 and holds exactly that.
    assert node.fresh(gallery.pk, PACK).version == 1  # type: ignore[union-attr]

    def quick_writer() -> None:
        try:
            _enrol_one(gallery, vectors[2], "O2")
        finally:
            connection.close()

    second = threading.Thread(target=quick_writer)
    second.start()
    second.join(1)
    assert second.is_alive(), "the second writer should wait for the first one's lock"
    release.set()
    slow.join(30)
    second.join(30)
    assert list(IndexChange.objects.filter(gallery=gallery).order_by("version").values_list("version", flat=True)) == [
        1,
        2,
        3,
    ]
    _assert_holds_exactly_the_database(node, gallery)


def test_a_node_too_far_behind_reloads_by_itself(gallery_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gallery = galleries.gallery_create(name="behind", kind=Gallery.Kind.CUSTODY)
    vectors = _unit_vectors(30, seed=4)
    _enrol_one(gallery, vectors[0], "B0")
    node = GalleryIndexes()
    held = node.fresh(gallery.pk, PACK)
    monkeypatch.setattr(live, "CATCH_UP_MAX", 10)
    for number in range(1, 30):
        _enrol_one(gallery, vectors[number], f"B{number}")
    assert node.fresh(gallery.pk, PACK) is not held  # reloaded (snapshot or database), not replayed
    _assert_holds_exactly_the_database(node, gallery)
