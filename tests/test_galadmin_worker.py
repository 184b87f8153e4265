"""The gallery and model-pack pages with a broker: a zip uploaded on the page and a re-embedding started on
it are worked through by a real Celery worker on the inference queue, while the page's status JSON follows.

Production shape only (PostgreSQL and Redis): the worker is a subprocess on the test database.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMIN
from rfr.celery import app as celery_app
from rfr.queues import Queue
from search.galleries import gallery_create
from search.index.live import get_index
from search.models import EnrolmentRun, Gallery, ReembedRun, Template
from tests.factories import celeba_identities, make_user
from tests.test_galadmin_packs import COPY, COPY_KEY, _pack_like

pytestmark = [pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(settings: Any, tmp_path: Path, pack_dir: Path) -> Iterator[Path]:
    """A Celery worker on the inference queue and the test database; yields its log file."""
    if not os.environ.get("REDIS_URL") or connection.vendor != "postgresql":
        pytest.skip("needs the production shape: PostgreSQL and Redis")
    # Tasks go to the broker even if an earlier test left Celery eager (tests.factories.eager_celery).
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    packs = tmp_path / "modelpacks"
    packs.mkdir()
    os.symlink(pack_dir.resolve(), packs / pack_dir.name)
    _pack_like(pack_dir, packs / COPY, name=COPY, version="2")
    data = tmp_path / "data"
    settings.DATA_DIR = data
    settings.MEDIA_ROOT = data / "media"
    settings.RFR_MODEL_PACK_DIR = packs
    get_index().clear()
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{connection.settings_dict['NAME']}",
        "RFR_DATA_DIR": str(data),
        "RFR_MODEL_PACK_DIR": str(packs),
        "DJANGO_SETTINGS_MODULE": "rfr.settings",
    }
    command = [sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", Queue.INFERENCE.value, "--pool", "solo"]
    command += ["-l", "info", "-n", f"galadmin-{os.getpid()}@%h"]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    yield tmp_path / "worker.log"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    celery_app.conf.task_always_eager = eager
    get_index().clear()


def _wait_done(client: Client, url: str, log: Path, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        status = client.get(url).json()
        seen.append(status["progress"])
        if status["status"] != "processing":
            return {**status, "seen": seen}
        time.sleep(0.5)
    raise AssertionError(f"still processing after {timeout} s: {seen[-5:]}\n" + log.read_text()[-3000:])


def test_zip_enrolment_and_reembedding_run_on_a_worker(worker: Path, faces_dir: Path, settings: Any) -> None:
    admin = Client()
    admin.force_login(make_user("ada", role=ADMIN))
    gallery = gallery_create(name="Custody", kind=Gallery.Kind.CUSTODY, provenance="test")
    images = faces_dir / "celeba" / "images"
    chosen = list(celeba_identities(faces_dir).items())[:4]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        rows = ["file,subject_ref"]
        for n, (identity, files) in enumerate(chosen):
            archive.writestr(f"{n}.jpg", (images / files[0]).read_bytes())
            rows.append(f"{n}.jpg,CUST-{identity}")
        archive.writestr("missing-row.jpg", b"")
        rows.append("not-in-zip.jpg,CUST-MISSING")
        archive.writestr("subjects.csv", "\n".join(rows) + "\n")
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "custody.zip"

    response = admin.post(reverse("search:manage-gallery-enrol-zip", args=[gallery.pk]), {"archive": upload})
    run = EnrolmentRun.objects.get()
    assert response["Location"] == reverse("search:manage-enrolment-run", args=[run.pk])
    status = _wait_done(admin, reverse("search:manage-enrolment-run-status", args=[run.pk]), worker)
    assert status["counts"] == {"pending": 0, "enrolled": 4, "skipped": 0, "failed": 1}
    assert run.items.get(subject_ref="CUST-MISSING").message == "file not found"
    # The run's copies of its items (in the enrolment storage) were deleted once the run was over.
    assert not [p for p in (Path(settings.MEDIA_ROOT) / "enrolment-uploads").rglob("*") if p.is_file()]

    response = admin.post(reverse("search:manage-modelpack-reembed", args=[COPY]))
    reembed = ReembedRun.objects.get()
    status = _wait_done(admin, reverse("search:manage-reembed-run-status", args=[reembed.pk]), worker)
    assert status["status"] == "done" and status["counts"] == {"embedded": 4, "skipped": 0, "failed": 0}
    assert Template.objects.filter(gallery=gallery, pack_key=COPY_KEY).count() == 4
    page = admin.get(reverse("search:manage-reembed-run", args=[reembed.pk])).content.decode()
    assert "Finished: 4 embedded" in page
