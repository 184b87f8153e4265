"""Bulk enrolment with a broker: `gallery enrol` hands batches to a real Celery worker and waits for them.

Uses its own Redis database number so that no other worker on the same Redis takes the batches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rfr.queues import ALL_QUEUES
from tests import parallel
from tests.factories import celeba_identities, write_subjects_csv
from tests.test_gallery_resume import REPO, ROWS_SQL, World, scratch_database

REDIS_DB = parallel.redis_db_of_worker(parallel.WORKER_TESTS_REDIS_DB)  # 13 (12, ... on more processes)


def _redis_url() -> str | None:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/{REDIS_DB}"
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception:
        return None
    return url


@pytest.mark.slow
def test_enrolment_through_a_celery_worker(faces_dir: Path, tmp_path: Path) -> None:
    url = _redis_url()
    if url is None:
        if os.environ.get("REDIS_URL"):
            pytest.fail("REDIS_URL is set but Redis cannot be reached")
        pytest.skip("no Redis on 127.0.0.1:6379 for a worker test")
    identities = list(celeba_identities(faces_dir).items())[:4]
    rows = [(file, ref) for ref, files in identities for file in files[:2]]
    images_dir = faces_dir / "celeba" / "images"
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", rows)
    with scratch_database() as database_url:
        world = World(tmp_path / "w", database_url)
        world.root.mkdir()
        world.env["REDIS_URL"] = url
        world.run("migrate", "-v0")
        world.run("gallery", "create", "custody", "--kind", "custody")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rfr",
                "worker",
                "-Q",
                ALL_QUEUES,
                "--pool",
                "solo",
                "-l",
                "warning",
            ],
            cwd=REPO,
            env=world.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            output = world.run(
                "gallery", "enrol", "custody", "--images", str(images_dir), "--subjects", str(csv_path),
                "--batch-size", "3",
            )  # fmt: skip
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        enrolled = len(world.query(ROWS_SQL))
        assert enrolled >= len(rows) - 2
        assert f"{enrolled} enrolled" in output
        runs = world.query("SELECT status FROM search_enrolmentrun")
        assert runs == [("finished",)]
