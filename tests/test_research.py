"""Re-search (cases.research): a search kept searching finds a person enrolled after it ran.

Real engine, real CelebA photos: a probe of someone not in the gallery is searched (no candidate for them), the
investigator keeps the search searching, that person is enrolled, and one housekeeping cycle (the registered
Celery task) adds them as a new candidate flagged "new since", notifies the case owner, audits the run, and the
audit chain verifies. It stops when the case closes or a possible match is released.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.core.management import call_command
from django.test import Client

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.lifecycle import case_close
from cases.models import Candidate, Case, Notification, Search, SearchWatch
from cases.research import research_due
from rfr.queues import TaskName
from search.enrolment import EnrolmentError, gallery_image_enrol
from tests.factories import celeba_identities, client_for, upload

pytestmark = pytest.mark.django_db


def _newcomer(faces_dir: Path, taken: set[str], engine: Any) -> tuple[str, list[Path], Path]:
    """A CelebA identity not in the gallery fixture: (identity, photos to enrol, the probe photo)."""
    images = faces_dir / "celeba" / "images"
    for identity, files in reversed(list(celeba_identities(faces_dir).items())):
        if identity in taken or len(files) < 4:
            continue
        paths = [images / f for f in files]
        return identity, paths[:-1], paths[-1]
    raise AssertionError("no spare CelebA identity")


def _enrol(gallery: Any, identity: str, paths: list[Path], engine: Any) -> int:
    enrolled = 0
    for path in paths:
        try:
            gallery_image_enrol(
                gallery=gallery,
                data=path.read_bytes(),
                subject_ref=f"CUST-{identity}",
                original_filename=path.name,
                engine=engine,
            )
        except EnrolmentError:
            continue
        enrolled += 1
        if enrolled == 2:
            break
    return enrolled


@pytest.fixture
def kept_search(
    case: Case,
    people: dict[str, Any],
    gallery: tuple[Any, dict[str, list[Path]]],
    faces_dir: Path,
    engine: Any,
    run_on_commit: Callable[..., Any],
) -> tuple[Search, str, list[Path]]:
    """A finished search of a newcomer's probe against the gallery (they are not in it), kept searching."""
    gallery_obj, identities = gallery
    identity, to_enrol, probe_path = _newcomer(faces_dir, set(identities), engine)
    investigator = client_for(people["investigator"])
    probe_id = run_on_commit(lambda: upload(investigator, case, probe_path.read_bytes(), probe_path.name)).json()["id"]
    probe = investigator.get(f"/api/probes/{probe_id}/").json()
    assert probe["status"] == "done" and probe["faces"], probe
    body = run_on_commit(
        lambda: investigator.post(
            f"/api/faces/{probe['faces'][0]['id']}/searches/",
            {"galleries": [gallery_obj.pk], "justification": "Robbery, camera 3"},
            format="json",
        )
    ).json()
    search = Search.objects.get(pk=body["id"])
    assert search.status == Search.Status.DONE
    assert not search.candidates.filter(subject_ref=f"CUST-{identity}").exists()
    kept = investigator.post(f"/api/searches/{search.pk}/keep-searching/", {"keep": True}, format="json")
    assert kept.status_code == 200 and kept.json()["keep_searching"] is True, kept.json()
    return search, identity, to_enrol


def test_a_person_enrolled_after_an_unsuccessful_search_is_found_within_one_housekeeping_cycle(
    case: Case,
    people: dict[str, Any],
    gallery: tuple[Any, dict[str, list[Path]]],
    engine: Any,
    kept_search: tuple[Search, str, list[Path]],
) -> None:
    search, identity, to_enrol = kept_search
    before = set(search.candidates.values_list("pk", flat=True))

    # A housekeeping cycle with nothing new enrolled changes nothing and notifies no one.
    assert research_due() == {"kept": 1, "runs": 0, "new_candidates": 0}
    assert not Notification.objects.filter(kind=Notification.Kind.RESEARCH_FOUND).exists()

    assert _enrol(gallery[0], identity, to_enrol, engine) == 2
    # One housekeeping cycle: the task as Celery beat sends it, by its registered name.
    report = current_app.tasks[TaskName.RESEARCH_DUE.value].apply().get()
    assert report["runs"] == 1 and report["new_candidates"] >= 1, report

    new = list(search.candidates.exclude(pk__in=before).order_by("rank"))
    assert [c.subject_ref for c in new] == [f"CUST-{identity}"], "only the newly enrolled person is new"
    found = new[0]
    assert found.new_since is not None and found.found_by_run is not None and found.found_by_run.number == 2
    assert found.score >= search.threshold
    assert found.rank == max([0, *search.candidates.filter(pk__in=before).values_list("rank", flat=True)]) + 1
    assert found.found_by_run.templates_compared == 2  # only the templates enrolled since the search ran

    # The owner is notified, once, with a link to the search; the run is audited.
    notes = Notification.objects.filter(recipient=people["investigator"], kind=Notification.Kind.RESEARCH_FOUND)
    assert notes.count() == 1 and notes.get().url == f"/searches/{search.pk}/"
    assert not Notification.objects.filter(recipient=people["colleague"], kind=Notification.Kind.RESEARCH_FOUND)
    event = AuditEvent.objects.get(action=AuditAction.SEARCH_RESEARCHED)
    assert event.case_id == case.pk and event.detail["new_candidates"] == 1 and event.detail["templates_compared"] == 2

    # The search page shows the new candidate flagged, and its history with both runs.
    page = Client()
    page.force_login(people["investigator"])
    html = page.get(f"/searches/{search.pk}/").content.decode()
    assert f"CUST-{identity}" in html and "new since" in html
    assert "Re-search on new enrolments" in html and "Keep searching is on" in html

    workbench = page.get(f"/cases/{case.pk}/workbench/").content.decode()
    assert "re-run 1 time on new enrolments; keep searching is on" in workbench

    # A second cycle finds nothing more (the mark moved with the run).
    assert research_due()["runs"] == 0

    assert audit_chain_verify().ok
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "OK" in out.getvalue().upper()


def test_keep_searching_stops_when_the_case_closes(
    case: Case, people: dict[str, Any], gallery: tuple[Any, dict[str, list[Path]]], engine: Any, kept_search: Any
) -> None:
    search, identity, to_enrol = kept_search
    case_close(case=case, closed_by=people["investigator"], reason="Charged")
    _enrol(gallery[0], identity, to_enrol, engine)
    assert research_due()["runs"] == 0
    watch = SearchWatch.objects.get(search=search)
    assert watch.stop_reason == SearchWatch.Stop.CASE_CLOSED and watch.stopped_at is not None
    assert not search.candidates.filter(subject_ref=f"CUST-{identity}").exists()
    assert AuditEvent.objects.filter(action=AuditAction.SEARCH_KEEP_SEARCHING_STOPPED, case_id=case.pk).exists()


def test_keep_searching_stops_once_a_possible_match_is_released(
    case: Case, people: dict[str, Any], kept_search: Any
) -> None:
    search, _, _ = kept_search
    candidate = Candidate.objects.create(
        search=search,
        rank=999,
        score=0.9,
        gallery_id=0,
        gallery_name="g",
        subject_id=0,
        subject_ref="X",
        template_id=0,
        outcome=Candidate.Outcome.RELEASED,
    )
    assert candidate.released
    research_due()
    assert SearchWatch.objects.get(search=search).stop_reason == SearchWatch.Stop.RELEASED
    # It cannot be started again either.
    again = client_for(people["investigator"]).post(
        f"/api/searches/{search.pk}/keep-searching/", {"keep": True}, format="json"
    )
    assert again.status_code == 409 and again.json()["error"] == "search_has_released_match"


def test_only_people_who_may_search_keep_a_search_searching(people: dict[str, Any], kept_search: Any) -> None:
    search, _, _ = kept_search
    supervisor = client_for(people["supervisor"])
    assert supervisor.get(f"/api/searches/{search.pk}/keep-searching/").status_code == 200
    assert (
        supervisor.post(f"/api/searches/{search.pk}/keep-searching/", {"keep": False}, format="json").status_code == 403
    )
    assert client_for(people["outsider"]).get(f"/api/searches/{search.pk}/keep-searching/").status_code == 404
    stopped = client_for(people["colleague"]).post(
        f"/api/searches/{search.pk}/keep-searching/", {"keep": False}, format="json"
    )
    assert stopped.status_code == 200 and stopped.json()["keep_searching"] is False
    assert stopped.json()["stop_reason"] == SearchWatch.Stop.PERSON
