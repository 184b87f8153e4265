"""A bulk enrolment whose command dies does not stay `running` for ever: housekeeping marks it interrupted
(audited), leaves live runs alone, and the interrupted run resumes to the end when run again."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from search.enrolment import (
    EnrolmentEntry,
    enrolment_run_create,
    enrolment_run_execute,
    enrolment_runs_mark_interrupted,
)
from search.galleries import gallery_create
from search.models import EnrolmentRun
from search.tasks import enrolment_runs_check
from tests.factories import celeba_identities, write_subjects_csv
from tests.test_gallery_resume import World, scratch_database


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_silent_run_is_marked_interrupted_a_live_one_is_not_and_the_interrupted_one_resumes(
    gallery_env: Path, faces_dir: Path
) -> None:
    gallery = gallery_create(name="Custody", kind="custody")
    images = faces_dir / "celeba" / "images"
    identity, files = next(iter(celeba_identities(faces_dir).items()))
    entries = [EnrolmentEntry(path=file, subject_ref=f"CUST-{identity}", attributes={}) for file in files[:2]]
    dead = enrolment_run_create(gallery=gallery, images_dir=images, entries=entries)
    live = enrolment_run_create(gallery=gallery, images_dir=images, entries=entries)
    assert dead.heartbeat_at is not None
    # The command that ran `dead` was killed twenty minutes ago; `live` showed life a moment ago.
    EnrolmentRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=20))

    assert enrolment_runs_check() == [dead.pk]  # the beat task, run as a worker runs it
    dead.refresh_from_db()
    live.refresh_from_db()
    assert dead.status == EnrolmentRun.Status.INTERRUPTED and live.status == EnrolmentRun.Status.RUNNING
    event = AuditEvent.objects.get(action="gallery.enrol_interrupted")
    assert event.detail["run_id"] == dead.pk and event.detail["pending"] == 2
    assert event.detail["silent_seconds"] >= 20 * 60 and event.actor_id is None
    assert enrolment_runs_mark_interrupted() == []  # nothing more to mark; audited once

    resumed = enrolment_run_execute(run=dead, in_process=True, progress=False)
    assert resumed.status == EnrolmentRun.Status.FINISHED
    assert sum(resumed.counts.get(k, 0) for k in ("enrolled", "failed", "skipped")) == 2
    assert resumed.counts.get("pending", 0) == 0


@pytest.mark.slow
def test_a_killed_enrol_command_leaves_a_run_housekeeping_marks_interrupted(faces_dir: Path, tmp_path: Path) -> None:
    identities = list(celeba_identities(faces_dir).items())[:4]
    rows = [(file, ref) for ref, files in identities for file in files[:2]]
    images_dir = faces_dir / "celeba" / "images"
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", rows)
    with scratch_database() as database_url:
        world = World(tmp_path / "w", database_url)
        world.root.mkdir()
        world.run("migrate", "-v0")
        world.run("gallery", "create", "custody", "--kind", "custody")
        args = ["--images", str(images_dir), "--subjects", str(csv_path), "--in-process", "--batch-size", "1"]
        process = world.manage("gallery", "enrol", "custody", *args, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                done = world.query("SELECT COUNT(*) FROM search_template")[0][0]
            except Exception:  # tables not there yet, or locked for a moment by the writer
                done = 0
            if done >= 1:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        assert process.returncode == -signal.SIGKILL, "the command finished before it could be killed"
        assert world.query("SELECT status FROM search_enrolmentrun") == [("running",)]

        time.sleep(1.5)
        mark = "from search.enrolment import enrolment_runs_mark_interrupted as m; print(m(silent_seconds=1))"
        assert world.run("shell", "-c", mark).strip().endswith("[1]")
        assert world.query("SELECT status FROM search_enrolmentrun") == [("interrupted",)]
        assert world.query("SELECT count(*) FROM audit_auditevent WHERE action = 'gallery.enrol_interrupted'") == [(1,)]
        resume = (
            "from search.models import EnrolmentRun; from search.enrolment import enrolment_run_execute as e;"
            " print(e(run=EnrolmentRun.objects.get(), in_process=True, progress=False).status)"
        )
        assert world.run("shell", "-c", resume).strip().endswith("finished")
        pending = world.query("SELECT count(*) FROM search_enrolmentitem WHERE status = 'pending'")
        assert pending == [(0,)]
