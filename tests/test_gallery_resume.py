"""A `manage.py gallery enrol` killed with SIGKILL part-way and run again gives exactly the templates of an
uninterrupted run: no duplicates, nothing lost. Each run uses its own fresh database (SQLite file, or a
scratch PostgreSQL database when DATABASE_URL is set) so that separate processes can share it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from tests.factories import celeba_identities, write_subjects_csv

REPO = Path(__file__).resolve().parent.parent
IMAGES = 24
ROWS_SQL = """
    SELECT i.sha256, s.external_ref, t.pack_key, t.embedding, t.box
    FROM search_template t
    JOIN search_galleryimage i ON i.id = t.image_id
    JOIN search_subject s ON s.id = t.subject_id
"""


class World:
    """One data folder and one database, driven through manage.py in subprocesses."""

    def __init__(self, root: Path, database_url: str | None) -> None:
        self.root = root
        self.database_url = database_url
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        self.env.update(
            RFR_DATA_DIR=str(root),
            RFR_MODEL_PACK_DIR=str(settings.RFR_MODEL_PACK_DIR),
            DJANGO_SETTINGS_MODULE="rfr.settings",
        )
        if database_url:
            self.env["DATABASE_URL"] = database_url

    def manage(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env, stdout=subprocess.PIPE, **kwargs
        )

    def run(self, *args: str) -> str:
        process = self.manage(*args, stderr=subprocess.PIPE)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
        return out.decode()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url) as connection:
                return [
                    tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in connection.execute(sql)
                ]
        with sqlite3.connect(self.root / "rfr.sqlite3", timeout=20) as connection:
            return list(connection.execute(sql))


@contextmanager
def scratch_database() -> Iterator[str | None]:
    """None for SQLite (the world's own file); a throwaway PostgreSQL database otherwise."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield None
        return
    import psycopg

    name = f"rfr_resume_{uuid.uuid4().hex[:10]}"
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _box(value: Any) -> list[float]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _prepare(world: World, csv_path: Path) -> None:
    world.run("migrate", "-v0")
    world.run("gallery", "create", "custody", "--kind", "custody")


def _enrol_args(images_dir: Path, csv_path: Path) -> list[str]:
    return [
        "gallery",
        "enrol",
        "custody",
        "--images",
        str(images_dir),
        "--subjects",
        str(csv_path),
        "--in-process",
        "--batch-size",
        "4",
    ]


@pytest.mark.slow
def test_killed_enrolment_resumes_to_the_same_templates(faces_dir: Path, tmp_path: Path) -> None:
    identities = celeba_identities(faces_dir)
    rows = [(file, ref) for ref, files in list(identities.items())[:8] for file in files[:3]][:IMAGES]
    images_dir = faces_dir / "celeba" / "images"
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", rows)

    with scratch_database() as url_a, scratch_database() as url_b:
        uninterrupted = World(tmp_path / "a", url_a)
        killed = World(tmp_path / "b", url_b)
        for world in (uninterrupted, killed):
            world.root.mkdir()
            _prepare(world, csv_path)
        uninterrupted.run(*_enrol_args(images_dir, csv_path))
        expected = sorted(uninterrupted.query(ROWS_SQL))
        assert len(expected) >= IMAGES - 4

        process = killed.manage(*_enrol_args(images_dir, csv_path), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                done = killed.query("SELECT COUNT(*) FROM search_template")[0][0]
            except Exception:  # the table may be locked for a moment by the writer
                done = 0
            if done >= 6:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        assert process.returncode == -signal.SIGKILL
        at_kill = killed.query("SELECT COUNT(*) FROM search_template")[0][0]
        assert 0 < at_kill < len(expected), "the run was not interrupted part-way"

        output = killed.run(*_enrol_args(images_dir, csv_path))
        assert f"{at_kill} already enrolled" in output
        resumed = sorted(killed.query(ROWS_SQL))
        # Same images, subjects, pack and faces; embeddings equal. Bit-equality is the rule (images are
        # analysed one at a time), but multi-threaded inference kernels may differ in the last bit under
        # heavy load, so vectors are compared to within float32 rounding.
        assert [row[:3] for row in resumed] == [row[:3] for row in expected]
        for got, want in zip(resumed, expected, strict=True):
            vector_got = np.frombuffer(bytes(got[3]), "<f4")
            vector_want = np.frombuffer(bytes(want[3]), "<f4")
            assert np.allclose(vector_got, vector_want, atol=1e-5), got[0]
            assert np.allclose(_box(got[4]), _box(want[4]), atol=0.02), got[0]
        shas = [row[0] for row in resumed]
        assert len(shas) == len(set(shas))
        # The gallery's images (the killed run's own copies of its items stay for as long as it is unfinished).
        stored = sorted(p.name for p in (killed.root / "media" / "galleries").rglob("*.jpg"))
        assert stored == sorted(p.name for p in (uninterrupted.root / "media" / "galleries").rglob("*.jpg"))
        versions = killed.query("SELECT version FROM search_indexstate")
        assert versions == [(len(expected),)]
