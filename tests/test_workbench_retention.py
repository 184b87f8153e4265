"""Retention of closed cases: `manage.py cases purge-expired` and the `cases.purge_expired` task delete the
probes, faces, searches, candidates, decisions and stored files of cases closed longer than
RFR_CASE_RETENTION_DAYS ago, keep the case row and every audit event, and record one audit event per case.

Real engine and real images: the files deleted are the originals and crops the upload really stored.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.lifecycle import case_close, case_create
from cases.models import Candidate, Case, Decision, Probe, ProbeFace, Search, Video
from tests.factories import client_for, upload

pytestmark = pytest.mark.django_db

RETENTION_DAYS = 30


@dataclass
class Worked:
    case: Case
    files: list[Path]


@pytest.fixture
def hanks_gallery(insightface_images: Path, engine: Any) -> Any:
    from search.enrolment import gallery_image_enrol
    from search.galleries import gallery_create

    gallery = gallery_create(name="Retention custody", kind="custody", provenance="insightface sample")
    path = insightface_images / "Tom_Hanks_54745.png"
    gallery_image_enrol(gallery=gallery, data=path.read_bytes(), subject_ref="CUST-HANKS", engine=engine)
    return gallery


@pytest.fixture
def work_in_case(
    people: dict[str, Any], insightface_images: Path, hanks_gallery: Any, run_on_commit: Callable[..., Any]
) -> Callable[[str], Worked]:
    """A case with a real probe, its face, a search, a candidate and a decision; closed by its owner."""

    def make(reference: str) -> Worked:
        owner = people["investigator"]
        case = case_create(
            owner=owner,
            reference=reference,
            title="Retention",
            purpose=Case.Purpose.SUSPECT,
            offence_category="Robbery",
            legal_basis="Prevention and detection of crime.",
        )
        client = client_for(owner)
        data = (insightface_images / "Tom_Hanks_54745.png").read_bytes()
        probe_id = run_on_commit(lambda: upload(client, case, data, "hanks.png")).json()["id"]
        probe = client.get(f"/api/probes/{probe_id}/").json()
        assert probe["status"] == "done" and len(probe["faces"]) == 1, probe
        search = run_on_commit(
            lambda: client.post(
                f"/api/faces/{probe['faces'][0]['id']}/searches/",
                {"galleries": [hanks_gallery.pk], "justification": "Retention test"},
                format="json",
            )
        ).json()
        candidate = Candidate.objects.get(search_id=search["id"], rank=1)
        decided = client.post(
            f"/api/candidates/{candidate.pk}/decisions/",
            {"decision": "not_a_match", "rationale": "Different ears"},
            format="json",
        )
        assert decided.status_code == 201
        stored = Probe.objects.get(pk=probe["id"])
        files = [Path(stored.original.path)] + [Path(f.aligned_crop.path) for f in stored.faces.all()]
        assert all(f.is_file() for f in files)
        case_close(case=case, closed_by=owner, reason="Charged")
        return Worked(case=Case.objects.get(pk=case.pk), files=files)

    return make


def _backdate(case: Case, days: int) -> None:
    Case.objects.filter(pk=case.pk).update(closed_at=timezone.now() - timedelta(days=days))


def _held(case: Case) -> dict[str, int]:
    return {
        "probes": Probe.objects.filter(case=case).count(),
        "faces": ProbeFace.objects.filter(probe__case=case).count(),
        "searches": Search.objects.filter(case=case).count(),
        "candidates": Candidate.objects.filter(search__case=case).count(),
        "decisions": Decision.objects.filter(candidate__search__case=case).count(),
        "videos": Video.objects.filter(case=case).count(),
    }


def test_purge_expired_deletes_a_closed_case_s_work_and_files_and_keeps_the_record(
    settings: Any,
    work_in_case: Callable[[str], Worked],
    hanks_gallery: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.RFR_CASE_RETENTION_DAYS = RETENTION_DAYS
    old = work_in_case("OP-OLD/1")
    recent = work_in_case("OP-RECENT/1")
    _backdate(old.case, RETENTION_DAYS + 1)
    _backdate(recent.case, RETENTION_DAYS - 1)
    before = {"old": _held(old.case), "recent": _held(recent.case)}
    assert before["old"] == {"probes": 1, "faces": 1, "searches": 1, "candidates": 1, "decisions": 1, "videos": 0}
    old_events = set(AuditEvent.objects.filter(case_id=old.case.pk).values_list("pk", flat=True))
    templates = hanks_gallery.templates.count()

    dry = io.StringIO()
    call_command("cases", "purge-expired", "--dry-run", stdout=dry)
    assert "OP-OLD/1" in dry.getvalue() and "OP-RECENT/1" not in dry.getvalue()
    assert _held(old.case) == before["old"]

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cases", "purge-expired", stdout=out)
    assert f"case {old.case.pk}: deleted 1 probes, 1 faces, 1 searches, 1 candidates, 1 decisions" in out.getvalue()

    assert _held(old.case) == dict.fromkeys(before["old"], 0)
    assert not any(f.exists() for f in old.files), "the stored originals and crops are gone"
    assert Case.objects.filter(pk=old.case.pk, status=Case.Status.CLOSED).exists(), "the case row stays"
    # Every earlier audit event stays, decisions included; one event records the purge.
    assert old_events <= set(AuditEvent.objects.filter(case_id=old.case.pk).values_list("pk", flat=True))
    assert AuditEvent.objects.filter(case_id=old.case.pk, action="candidate.decided").count() == 1
    purge = AuditEvent.objects.get(case_id=old.case.pk, action="case.retention_purged")
    assert purge.detail["deleted"] == before["old"]
    assert purge.detail["files_deleted"] == len(old.files)
    assert f"RFR_CASE_RETENTION_DAYS={RETENTION_DAYS}" in purge.detail["reason"]
    text = json.dumps(purge.detail)
    assert "template" not in text and "sha256" not in text and "box" not in text, "no biometric data"
    assert audit_chain_verify().ok

    # A case closed more recently, and the gallery, are untouched.
    assert _held(recent.case) == before["recent"]
    assert all(f.is_file() for f in recent.files)
    assert hanks_gallery.templates.count() == templates

    # A second run finds nothing to do and records nothing.
    again = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cases", "purge-expired", stdout=again)
    assert "0 case(s) purged" in again.getvalue()
    assert AuditEvent.objects.filter(action="case.retention_purged").count() == 1


def test_open_cases_are_never_purged_and_the_task_purges_what_is_due(
    settings: Any,
    work_in_case: Callable[[str], Worked],
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from cases.tasks import cases_purge_expired_task

    settings.RFR_CASE_RETENTION_DAYS = RETENTION_DAYS
    due = work_in_case("OP-DUE/1")
    reopened = work_in_case("OP-REOPENED/1")
    _backdate(due.case, RETENTION_DAYS + 5)
    # Open again, with an old closing time left behind: open cases are never purged.
    Case.objects.filter(pk=reopened.case.pk).update(
        status=Case.Status.OPEN, closed_at=timezone.now() - timedelta(days=RETENTION_DAYS + 5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = cases_purge_expired_task.delay().get()
    assert result == {str(due.case.pk): 5}
    assert sum(_held(due.case).values()) == 0 and not any(f.exists() for f in due.files)
    assert _held(reopened.case)["probes"] == 1 and all(f.is_file() for f in reopened.files)
