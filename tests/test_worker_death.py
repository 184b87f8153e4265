"""A worker killed mid-task loses no work: its unacknowledged batch goes to another worker.

Real Celery workers on the real Redis broker; the first is killed with SIGKILL while it holds a batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rfr.queues import ALL_QUEUES
from tests.factories import celeba_identities, write_subjects_csv
from tests.test_gallery_celery import _redis_url
from tests.test_gallery_resume import REPO, ROWS_SQL, World, scratch_database

DONE_SQL = "SELECT count(*) FROM search_enrolmentitem WHERE status <> 'pending'"


def _worker(world: World) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", ALL_QUEUES, "--pool", "solo", "-l", "warning"],
        cwd=REPO,
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_a_batch_held_by_a_killed_worker_is_finished_by_another(faces_dir: Path, tmp_path: Path) -> None:
    url = _redis_url()
    if url is None:
        if os.environ.get("REDIS_URL"):
            pytest.fail("REDIS_URL is set but Redis cannot be reached")
        pytest.skip("no Redis on 127.0.0.1:6379 for a worker test")
    identities = list(celeba_identities(faces_dir).items())[:6]
    rows = [(file, ref) for ref, files in identities for file in files[:2]]
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", rows)
    with scratch_database() as database_url:
        world = World(tmp_path / "w", database_url)
        world.root.mkdir()
        world.env.update(REDIS_URL=url, RFR_TASK_VISIBILITY_TIMEOUT="3")
        world.run("migrate", "-v0")
        world.run("gallery", "create", "custody", "--kind", "custody")
        enrol = world.manage(
            "gallery", "enrol", "custody", "--images", str(faces_dir / "celeba" / "images"),
            "--subjects", str(csv_path), "--batch-size", str(len(rows)),
            stderr=subprocess.PIPE,
        )  # fmt: skip
        first = _worker(world)
        second = None
        try:
            # one batch holds every image: kill the worker once it has finished some but not all
            deadline = time.monotonic() + 180
            done = 0
            while time.monotonic() < deadline:
                done = world.query(DONE_SQL)[0][0] if _tables_ready(world) else 0
                if done >= 2:
                    break
                time.sleep(0.2)
            assert 2 <= done < len(rows), f"the worker should be part-way through its batch, not at {done}"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = _worker(world)
            _out, err = enrol.communicate(timeout=240)
            assert enrol.returncode == 0, err.decode()[-2000:]
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
            if enrol.poll() is None:
                enrol.kill()
        templates = world.query(ROWS_SQL)
        shas = [row[0] for row in templates]
        assert len(shas) == len(set(shas)), "no image was enrolled twice"
        assert len(templates) >= len(rows) - 1  # every usable face (one CelebA photo may hold none)
        assert world.query("SELECT status FROM search_enrolmentrun") == [("finished",)]


def _tables_ready(world: World) -> bool:
    try:
        world.query("SELECT 1 FROM search_enrolmentitem LIMIT 1")
    except Exception:
        return False
    return True
