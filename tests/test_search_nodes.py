"""Search nodes: two Celery workers on the search queue that share no data directory (each its own
RFR_DATA_DIR, so its own index storage) answer the same searches identically, and a removed subject is gone
from both at once. Also: a process that is not a search node refuses to load an index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from celery import current_app
from django.db import connection, transaction

from cases.models import Candidate, ProbeFace, Search
from rfr.queues import Queue, TaskName
from search import galleries
from search.index.changes import index_changes_record
from search.index.live import GalleryIndexes
from search.index.node import NotASearchNode, search_node_enter, search_node_leave
from search.models import Gallery, GalleryImage, Subject, Template
from tests.factories import build_case_world, workbench_objects_create
from tests.test_gallery_celery import _redis_url

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parent.parent
PACK = "test-pack@1"
NODES = ("node-a", "node-b")


def _unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _enrol(gallery: Gallery, vectors: np.ndarray, prefix: str) -> list[int]:
    """Templates written the way enrolment writes them (rows + logged changes in one transaction)."""
    ids = []
    with transaction.atomic():
        for number, vector in enumerate(vectors):
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
            ids.append(template.pk)
        index_changes_record(gallery_id=gallery.pk, pack_key=PACK, changes=[(tid, "add") for tid in ids])
    return ids


def test_a_process_that_is_not_a_search_node_refuses_to_load_an_index(settings: Any) -> None:
    gallery = Gallery.objects.create(name="guarded", kind="custody")
    _enrol(gallery, _unit_vectors(3, seed=1), "g")
    search_node_leave()  # the test process is a search node for every other test (conftest)
    eager = current_app.conf.task_always_eager
    try:
        # A web process or inference worker of a deployment: tasks go to workers, no node declared.
        settings.CELERY_TASK_ALWAYS_EAGER = current_app.conf.task_always_eager = False
        settings.RFR_SEARCH_NODE = False
        with pytest.raises(NotASearchNode):
            GalleryIndexes().fresh(gallery.pk, PACK)
        search_node_enter()  # what a worker on the search queue does at start-up (search.tasks)
        loaded = GalleryIndexes().fresh(gallery.pk, PACK)
        assert loaded is not None and loaded.size == 3
        search_node_leave()
        # The embedded default: tasks in-process, so the one process is its own search node.
        settings.CELERY_TASK_ALWAYS_EAGER = current_app.conf.task_always_eager = True
        assert GalleryIndexes().fresh(gallery.pk, PACK) is not None
    finally:
        current_app.conf.task_always_eager = eager
        search_node_enter()


def _database_url() -> str:
    values = connection.settings_dict
    password = f":{values['PASSWORD']}" if values.get("PASSWORD") else ""
    port = f":{values['PORT']}" if values.get("PORT") else ""
    return f"postgres://{values['USER']}{password}@{values['HOST'] or '127.0.0.1'}{port}/{values['NAME']}"


def _start_node(name: str, data_dir: Path, broker: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"RFR_INDEX_STORAGE_DIR", "RFR_SEARCH_NODE"}}
    env.update(
        DATABASE_URL=_database_url(),
        REDIS_URL=broker,
        RFR_DATA_DIR=str(data_dir),
        RFR_SECRET_KEY="test-secret-key-for-search-nodes-" + "x" * 32,
        DJANGO_SETTINGS_MODULE="rfr.settings",
    )
    command = [
        sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", f"{Queue.SEARCH.value},{name}",
        "--pool", "threads", "--concurrency", "2", "-n", f"{name}@%h", "-l", "warning",
    ]  # fmt: skip
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115  (closed with the process, below)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[str]:
    if connection.vendor != "postgresql":
        pytest.skip("search nodes in separate processes need PostgreSQL (the test's SQLite is in memory)")
    broker = _redis_url()
    if broker is None:
        if os.environ.get("REDIS_URL"):
            pytest.fail("REDIS_URL is set but Redis cannot be reached")
        pytest.skip("no Redis for a worker test")
    workers = []
    for name in NODES:
        (tmp_path / name).mkdir()
        workers.append(_start_node(name, tmp_path / name, broker))
    conf = current_app.conf
    previous = conf.broker_url, conf.task_always_eager
    conf.broker_url, conf.task_always_eager = broker, False
    try:
        yield broker
    finally:
        conf.broker_url, conf.task_always_eager = previous
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for name in NODES:
            assert not (tmp_path / name / "index").exists() or all(
                path.is_dir() or path.suffix == ".rfridx" for path in (tmp_path / name / "index").rglob("*")
            )


def _search_on(node: str, world: Any, face: ProbeFace, gallery: Gallery, broker: str) -> list[tuple[int, str, float]]:
    search = Search.objects.create(
        case=world.case,
        face=face,
        requested_by=world.case.owner,
        galleries=[{"id": gallery.pk, "name": gallery.name}],
        top_k=10,
        threshold=-1.0,
        threshold_source=Search.ThresholdSource.SETTING,
        justification="two nodes",
        pack_key=PACK,
    )
    # Sent on a connection to the nodes' broker: the app's producer pool may still hold one to another broker
    # that an earlier test in this process used (Celery reads broker_url once per pool).
    with current_app.connection_for_write(broker) as connection:
        current_app.signature(TaskName.SEARCH_RUN.value, args=(search.pk,)).apply_async(
            queue=node, connection=connection
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        search.refresh_from_db()
        if search.status in {Search.Status.DONE, Search.Status.FAILED}:
            break
        time.sleep(0.2)
    assert search.status == Search.Status.DONE, (node, search.status, search.error_message)
    return [
        (c.rank, c.subject_ref, round(c.score, 5)) for c in Candidate.objects.filter(search=search).order_by("rank")
    ]


@pytest.mark.slow
def test_two_search_nodes_sharing_no_disk_agree_and_forget_a_removed_subject(two_nodes: str) -> None:
    world = build_case_world()
    workbench_objects_create(world)
    gallery = world.extra["gallery"]
    vectors = _unit_vectors(400, seed=5)
    _enrol(gallery, vectors, "N-")
    face = world.extra["face"]
    faces = []
    for number, probe in enumerate(vectors[:3] + 0.05 * _unit_vectors(3, seed=6), start=2):
        probe = probe / np.linalg.norm(probe)
        faces.append(ProbeFace.objects.create(
            probe=face.probe, index=number, box=face.box, landmarks=face.landmarks, detector_score=0.9,
            quality={"warnings": []}, template=probe.astype("<f4").tobytes(), pack_key=PACK,
            aligned_crop=face.aligned_crop.name,
        ))  # fmt: skip

    before = {node: [_search_on(node, world, f, gallery, two_nodes) for f in faces] for node in NODES}
    assert before["node-a"] == before["node-b"]
    assert [answers[0][1] for answers in before["node-a"]] == ["N-0", "N-1", "N-2"]  # each finds its mate

    # Enrol more while both nodes hold the index, then remove a subject: both catch up from the log.
    _enrol(gallery, _unit_vectors(50, seed=7), "M-")
    victim = Subject.objects.get(gallery=gallery, external_ref="N-1")
    galleries.subject_delete(subject=victim, reason="deletion on application: no further action")
    after = {node: [_search_on(node, world, f, gallery, two_nodes) for f in faces] for node in NODES}
    assert after["node-a"] == after["node-b"]
    assert all(ref != "N-1" for answers in after["node-a"] for _, ref, _ in answers)
    assert [answers[0][1] for answers in after["node-a"]][::2] == ["N-0", "N-2"]
