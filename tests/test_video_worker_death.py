"""Footage whose worker is killed mid-processing is finished by another worker, resuming after the last stored
chunk: no frame's faces are stored twice and none is lost.

Real Celery workers on the real Redis broker and a scratch PostgreSQL database; the first worker is killed with
SIGKILL once it has stored some chunks of the Hamilton clip but not all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from faceengine.video import video_frames
from rfr.queues import ALL_QUEUES
from tests.test_gallery_celery import _redis_url
from tests.test_gallery_resume import REPO, World, scratch_database

CLIP = Path(settings.RFR_FACES_DATA).parent / "video" / "real" / "short_hamilton_clip.mp4"
PROGRESS_SQL = "SELECT status, frames_done, frames_total, last_frame_index FROM cases_video"
UPLOAD = """
from django.contrib.auth import get_user_model
from django.core.files import File
from cases.lifecycle import case_create
from cases.video import video_upload
user = get_user_model().objects.create_user(username="ivy", password="long-enough-password-123")
case = case_create(owner=user, reference="OP-W", title="t", purpose="suspect", offence_category="", legal_basis="basis")
with open({clip!r}, "rb") as handle:
    video_upload(case=case, uploaded_by=user, file=File(handle), size={size}, filename="clip.mp4", source="cctv",
                 lawfully_held=True)
"""


def _worker(world: World) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", ALL_QUEUES, "--pool", "solo", "-l", "warning"],
        cwd=REPO,
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _progress(world: World) -> tuple[str, int, int, int] | None:
    try:
        rows = world.query(PROGRESS_SQL)
    except Exception:
        return None
    return rows[0] if rows else None


@pytest.mark.slow
def test_footage_held_by_a_killed_worker_is_finished_by_another_without_duplicates(tmp_path: Path) -> None:
    url = _redis_url()
    if url is None:
        if os.environ.get("REDIS_URL"):
            pytest.fail("REDIS_URL is set but Redis cannot be reached")
        pytest.skip("no Redis for a worker test")
    if not CLIP.is_file():
        pytest.skip(f"shared video data not found at {CLIP}")
    with scratch_database() as database_url:
        if database_url is None:
            pytest.skip("needs PostgreSQL (DATABASE_URL): the workers and the test share the database")
        world = World(tmp_path / "w", database_url)
        world.root.mkdir()
        world.env.update(REDIS_URL=url, RFR_TASK_VISIBILITY_TIMEOUT="3", RFR_VIDEO_CHUNK_FRAMES="5")
        world.run("migrate", "-v0")
        world.run("shell", "-c", UPLOAD.format(clip=str(CLIP), size=CLIP.stat().st_size))
        first = _worker(world)
        second = None
        try:
            deadline = time.monotonic() + 180
            progress = _progress(world)
            while time.monotonic() < deadline:
                progress = _progress(world)
                if progress and progress[1] >= 10:
                    break
                time.sleep(0.1)
            assert progress is not None and 10 <= progress[1] < progress[2], f"not part-way: {progress}"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = _progress(world)
            second = _worker(world)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                progress = _progress(world)
                if progress and progress[0] in {"done", "failed"}:
                    break
                time.sleep(0.5)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
        assert progress is not None and progress[0] == "done", progress
        assert killed_at is not None and killed_at[1] < progress[1]
        # Every sampled frame analysed once: as many as a full pass samples, ending at the last one.
        sampled = [frame.index for frame in video_frames(str(CLIP), sample_fps=5.0)]
        assert progress[1] == len(sampled) and progress[3] == sampled[-1]
        faces, distinct = world.query(
            "SELECT count(*), count(DISTINCT (frame_index, face_index)) FROM cases_videoface"
        )[0]
        assert faces == distinct > 0, "no face stored twice"
        assert world.query("SELECT count(*) FROM cases_videotrack")[0][0] > 0
        actions = [row[0] for row in world.query("SELECT action FROM audit_auditevent ORDER BY id")]
        assert actions.count("video.processed") == 1 and "video.failed" not in actions
