"""Broker outages: with Redis down, uploads and searches answer an error a person can act on and store nothing;
work committed while Redis dies (or lost with a non-persistent Redis) is sent again by housekeeping and
finishes on a real worker with nobody touching it.

A Redis of the test's own on port 6396, stopped and started by the test (never the shared one), and a real
Celery worker on it. PostgreSQL only: the worker is a separate process that must see the test's database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from cases.housekeeping import work_requeue, work_waiting_for_worker
from cases.models import Case, Probe, ProbeFace, Search
from cases.probes import probe_upload
from cases.searches import search_request
from rfr.celery import app as celery_app
from rfr.queues import ALL_QUEUES, TaskName, task_enqueue
from search.index.changes import index_changes_record
from search.models import IndexChange, Template
from tests import parallel
from tests.factories import PASSWORD, build_case_world, client_for, upload, workbench_objects_create

PORT = parallel.port_of_worker(6396)  # 6396, then 6397, ... for each further test process
URL = f"redis://127.0.0.1:{PORT}/0"
REPO = Path(__file__).resolve().parent.parent


class OwnRedis:
    """A Redis on PORT that this test starts and stops; with no persistence, stopping it loses its queue."""

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=PORT, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "--port", str(PORT), "--save", "", "--appendonly", "no", "--daemonize", "yes"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.ping():
            subprocess.run(["redis-cli", "-p", str(PORT), "shutdown", "nosave"], check=False, capture_output=True)
        deadline = time.monotonic() + 10
        while self.ping():
            assert time.monotonic() < deadline, "redis-server did not stop"
            time.sleep(0.05)


@pytest.fixture
def redis_server() -> Iterator[OwnRedis]:
    if connection.vendor != "postgresql":
        pytest.skip("the worker is a separate process: it needs the PostgreSQL test database")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed to stop and restart a broker of the test's own")
    server = OwnRedis()
    server.stop()  # a leftover from an interrupted run
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(redis_server: OwnRedis) -> Iterator[OwnRedis]:
    """This process queues tasks on the test's own Redis instead of running them in-process."""
    conf = celery_app.conf
    previous = conf.broker_url, conf.task_always_eager
    conf.broker_url, conf.task_always_eager = URL, False
    _pools_reset()
    yield redis_server
    conf.broker_url, conf.task_always_eager = previous
    _pools_reset()


def _pools_reset() -> None:
    # Connections made for another broker URL must not be reused (what Celery itself does after a fork).
    # Not closed: kombu keeps pools in a registry by URL, and would hand the closed one out again.
    celery_app._pool = None
    if "amqp" in celery_app.__dict__:
        celery_app.amqp._producer_pool = None


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_with_the_broker_down_upload_and_search_refuse_with_a_clear_error_and_store_nothing(
    broker: OwnRedis, media: Path, case: Case, people: dict[str, Any], insightface_images: Path
) -> None:
    world = build_case_world()
    workbench_objects_create(world)
    face, gallery = world.extra["face"], world.extra["gallery"]
    files_before, events_before = _files(media), AuditEvent.objects.count()
    searches_before = Search.objects.count()
    broker.stop()

    started = time.monotonic()
    response = upload(client_for(people["investigator"]), case, (insightface_images / "t1.jpg").read_bytes())
    assert time.monotonic() - started < 8, "a dead broker must not hold the request"
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "queue_unavailable"
    assert "nothing was stored" in body["message"] and "Try again" in body["message"]
    assert response["Retry-After"].isdigit()

    owner = client_for(world.users["owner"])
    response = owner.post(
        f"/api/faces/{face.pk}/searches/", {"galleries": [gallery.pk], "justification": "Robbery"}, format="json"
    )
    assert response.status_code == 503 and response.json()["error"] == "queue_unavailable"

    # The page: back to the workbench with the message, not a server error.
    page = Client()
    page.login(username=people["investigator"].username, password=PASSWORD)
    with open(insightface_images / "t1.jpg", "rb") as handle:
        response = page.post(
            f"/cases/{case.pk}/workbench/upload/",
            {"images": handle, "source": "cctv", "lawfully_held": "on"},
            follow=True,
        )
    assert response.status_code == 200
    assert "task queue" in response.content.decode() and "nothing was stored" in response.content.decode()

    assert not Probe.objects.filter(case=case).exists()
    assert Search.objects.count() == searches_before
    assert _files(media) == files_before
    # Nothing but the page's sign-in was recorded: no upload, no search.
    assert list(AuditEvent.objects.order_by("pk")[events_before:].values_list("action", flat=True)) == ["auth.login"]


def _worker(media: Path, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    database = connection.settings_dict
    env.update(
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        REDIS_URL=URL,
        RFR_DATA_DIR=str(data_dir),
        RFR_MEDIA_ROOT=str(media),
        RFR_MODEL_PACK_DIR=str(django_settings.RFR_MODEL_PACK_DIR),
        RFR_ENGINE_THREADS="1",
        RFR_REQUEUE_AFTER_SECONDS="1",
        DJANGO_SETTINGS_MODULE="rfr.settings",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", ALL_QUEUES, "--pool", "solo", "-l", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


@pytest.mark.django_db(transaction=True)
def test_work_committed_while_the_broker_dies_finishes_when_it_returns_with_nobody_touching_it(
    broker: OwnRedis, media: Path, tmp_path: Path, settings: Any, insightface_images: Path
) -> None:
    world = build_case_world()
    workbench_objects_create(world)
    owner, face, gallery = world.users["owner"], world.extra["face"], world.extra["gallery"]
    # Unit vectors, as real templates are, so the search finds the gallery's one subject.
    unit = np.zeros(128, "<f4")
    unit[0] = 1.0
    Template.objects.filter(gallery=gallery).update(embedding=unit.tobytes())
    ProbeFace.objects.filter(pk=face.pk).update(template=unit.tobytes())
    with transaction.atomic():  # made directly by the factory: put it in the index's change log too
        changes = [
            (pk, IndexChange.Op.ADD) for pk in Template.objects.filter(gallery=gallery).values_list("pk", flat=True)
        ]
        index_changes_record(gallery_id=gallery.pk, pack_key=face.pack_key, changes=changes)
    data = (insightface_images / "t1.jpg").read_bytes()
    upload_args = {"case": world.case, "uploaded_by": owner, "source": "cctv", "lawfully_held": True}

    # 1. Queued while Redis was up, then lost with it (no persistence): the row looks queued and alive.
    lost = probe_upload(data=data, filename="lost.jpg", **upload_args)
    # 2. Redis killed at the moment of queueing: the rows commit, queueing fails after the commit.
    started = time.monotonic()
    with transaction.atomic():
        killed = probe_upload(data=data, filename="killed.jpg", **upload_args)
        search = search_request(
            face=face, requested_by=owner, gallery_ids=[gallery.pk], justification="Robbery on the high street"
        )
        broker.stop()
    assert time.monotonic() - started < 10, "queueing on a dead broker must fail quickly, not hang"
    killed.refresh_from_db()
    search.refresh_from_db()
    assert killed.status == Probe.Status.PENDING and killed.heartbeat_at is None
    assert search.status == Search.Status.PENDING and search.heartbeat_at is None
    assert work_waiting_for_worker(killed) and work_waiting_for_worker(search)
    # Nothing is sent while the broker is down; the rows stay marked for the next round.
    assert work_requeue() == {"probes": 0, "searches": 0, "videos": 0}
    assert Probe.objects.get(pk=killed.pk).heartbeat_at is None

    broker.start()
    time.sleep(1.1)  # the lost probe has now been silent longer than RFR_REQUEUE_AFTER_SECONDS
    log = tmp_path / "worker.log"
    worker = _worker(media, tmp_path / "worker-data", log)
    try:
        # The beat schedule's re-queue task, run by the worker itself: nobody sends the work by hand.
        task_enqueue(TaskName.WORK_REQUEUE)
        deadline = time.monotonic() + 180
        rows = [(Probe, lost.pk), (Probe, killed.pk), (Search, search.pk)]
        while time.monotonic() < deadline:
            statuses = [model.objects.get(pk=pk).status for model, pk in rows]  # type: ignore[attr-defined]
            if all(status in {"done", "failed"} for status in statuses):
                break
            assert worker.poll() is None, "the worker died: " + log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert statuses == ["done", "done", "done"]
    for probe_id in (lost.pk, killed.pk):
        probe = Probe.objects.get(pk=probe_id)
        assert probe.faces.count() == 6 and probe.requeues == 1
        # Processed once: one processing event each, however many deliveries there were.
        assert AuditEvent.objects.filter(action="probe.processed", target_id=str(probe_id)).count() == 1
    search = Search.objects.get(pk=search.pk)
    assert search.candidates.count() == 1 and search.requeues == 1
    assert AuditEvent.objects.filter(action="search.completed", target_id=str(search.pk)).count() == 1


@pytest.mark.django_db
def test_requeue_sends_only_silent_work_backs_off_and_takes_over_stale_processing(broker: OwnRedis) -> None:
    import redis

    world = build_case_world()
    workbench_objects_create(world)
    probe, search = world.extra["probe"], world.extra["search"]
    queued = redis.Redis.from_url(URL)
    now = timezone.now()

    def state(model: Any, pk: int, status: str, silent: float | None, requeues: int = 0) -> None:
        heartbeat = None if silent is None else now - timedelta(seconds=silent)
        model.objects.filter(pk=pk).update(status=status, heartbeat_at=heartbeat, requeues=requeues)

    # Queued two minutes ago and never started: sent again. Processing and heard from 10 s ago: left alone.
    state(Probe, probe.pk, "pending", 130)
    state(Search, search.pk, "processing", 10)
    assert work_requeue() == {"probes": 1, "searches": 0, "videos": 0}
    assert (queued.llen("inference"), queued.llen("search")) == (1, 0)
    assert Probe.objects.get(pk=probe.pk).requeues == 1
    assert work_requeue() == {"probes": 0, "searches": 0, "videos": 0}  # just sent: not again at the next round

    # The second re-send waits twice as long (a backlog is not flooded with copies).
    state(Probe, probe.pk, "pending", 130, requeues=1)
    assert work_requeue() == {"probes": 0, "searches": 0, "videos": 0}
    state(Probe, probe.pk, "pending", 250, requeues=1)
    # A processing search silent past RFR_TASK_STALE_SECONDS lost its worker: sent again.
    state(Search, search.pk, "processing", 400)
    assert work_requeue() == {"probes": 1, "searches": 1, "videos": 0}
    assert (queued.llen("inference"), queued.llen("search")) == (2, 1)

    # Finished work is never sent, however old its heartbeat.
    state(Probe, probe.pk, "done", 10_000)
    state(Search, search.pk, "failed", 10_000)
    assert work_requeue() == {"probes": 0, "searches": 0, "videos": 0}
