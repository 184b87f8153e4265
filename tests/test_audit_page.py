"""/audit/ as its readers use it: each event's detail as labelled fields (never a raw mapping), the case named
by its reference where the reader is on it, filters by case reference, username, action (the closed
vocabulary, or all of one kind) and date range, pages of 50; and the scopes: an admin reads every event,
a supervisor their teams' (a reference of another team's case finds nothing), an investigator and an outsider
are refused. The browser check at 1366 px is tests/e2e/test_audit_browser.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.presenters import audit_detail_fields
from audit.services import audit_event_record
from cases.lifecycle import case_create
from tests.factories import CaseWorld, build_case_world, make_user

pytestmark = pytest.mark.django_db

SHA = "ab" * 32


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    # A report download on team A's case, with a hash in its detail; and a case of team B's.
    audit_event_record(
        action=AuditAction.SEARCH_REPORT_DOWNLOADED,
        actor=world.users["owner"],
        target_type="search",
        target_id=7,
        case_id=world.case.pk,
        detail={"report_sha256": SHA},
    )
    stranger = make_user("stranger")
    from accounts.services import team_member_add

    team_member_add(team=world.team_b, user=stranger, added_by=world.users["admin"])
    world.extra["other_case"] = case_create(
        owner=stranger, reference="ELSEWHERE/9", title="t", purpose="suspect", offence_category="", legal_basis="b"
    )
    return world


def _page(reader: Any, **params: Any) -> str:
    client = Client()
    client.force_login(reader)
    response = client.get(reverse("audit-list"), params)
    assert response.status_code == 200
    return response.content.decode().split('<table class="audit-events">', 1)[1]


def _rows(body: str) -> int:
    return body.split("<tbody>", 1)[1].count("<tr>") - body.count("No events.")


def test_detail_reads_as_labelled_fields() -> None:
    fields = audit_detail_fields(
        {
            "galleries": [{"id": 1, "name": "Custody"}, {"id": 2, "name": "Wanted"}],
            "pack_key": "sface@1",
            "lawfully_held": True,
            "threshold": 0.36281,
            "top_k": 50,
            "small_face_reason": "",
            "redacted": "Case content withheld.",
        }
    )
    assert fields == [
        ("Galleries", "Custody, Wanted"),
        ("Model pack", "sface@1"),
        ("Lawfully held (stated)", "yes"),
        ("Threshold", "0.36281"),
        ("List length", "50"),
        ("Reason to search a very small face", "—"),
        ("Withheld", "Case content withheld."),
    ]
    assert audit_detail_fields({"filters": {"username": "sam", "date_from": None}}) == [
        ("Filters", "Username: sam; Date from: —")
    ]


def test_the_page_shows_fields_and_references_not_dicts(world: CaseWorld) -> None:
    body = _page(world.users["supervisor"], action="search.report_downloaded")
    assert "<dt>Report SHA-256</dt><dd>" + SHA + "</dd>" in body
    rows = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert "{&#x27;" not in rows and "{'" not in rows  # no raw Python mapping
    assert "OP-REDWOOD/1" in body  # the case by its reference, for a supervisor of its team
    assert "Someone downloaded a search&#x27;s PDF report" in body  # the action in words


def test_filter_by_case_reference_user_action_and_dates(world: CaseWorld) -> None:
    admin, supervisor = world.users["admin"], world.users["supervisor"]
    on_case = _page(supervisor, case="op-redwood/1 ")  # the reference as typed: any case, spaces ignored
    assert _rows(on_case) >= 3 and "ELSEWHERE/9" not in on_case
    assert "case.created" in on_case and "search.report_downloaded" in on_case

    by_user = _page(admin, user="owner", action="case.")
    assert "case.created" in by_user and "case.member_added" in by_user and "search.report" not in by_user
    exact = _page(admin, action="case.member_added")
    assert "case.member_added" in exact and "case.created" not in exact

    today = timezone.localdate()
    assert "case.created" in _page(admin, date_from=today.isoformat(), date_to=today.isoformat())
    assert "No events." in _page(admin, date_to=(today - dt.timedelta(days=1)).isoformat())

    # A backwards range is an error on the field, not a silent empty list.
    client = Client()
    client.force_login(admin)
    html = client.get(reverse("audit-list"), {"date_from": "2026-02-01", "date_to": "2026-01-01"}).content.decode()
    assert "The end date is before the start date." in html
    # An action outside the closed vocabulary is refused by the form.
    html = client.get(reverse("audit-list"), {"action": "case.madeup"}).content.decode()
    assert "Select a valid choice" in html


def test_supervisors_see_their_teams_only_and_references_of_their_cases(world: CaseWorld) -> None:
    other_case = world.extra["other_case"]
    supervisor, other_sup, admin = world.users["supervisor"], world.users["other_sup"], world.users["admin"]

    mine = _page(supervisor)
    assert "OP-REDWOOD/1" in mine and "ELSEWHERE/9" not in mine and f"#{other_case.pk}<" not in mine
    assert "No events." in _page(supervisor, case="ELSEWHERE/9")
    assert "No events." in _page(supervisor, case=f"#{other_case.pk}")  # not in their scope at all

    theirs = _page(other_sup, case="ELSEWHERE/9")
    assert "case.created" in theirs and "OP-REDWOOD/1" not in theirs

    # The admin reads every event, the case by its number only: a reference is case content, and they are on
    # neither case, so a reference finds nothing for them.
    everything = _page(admin, action="case.created")
    assert f"#{world.case.pk}" in everything and f"#{other_case.pk}" in everything
    assert "OP-REDWOOD/1" not in everything and "ELSEWHERE/9" not in everything
    assert "No events." in _page(admin, case="OP-REDWOOD/1")
    assert "case.created" in _page(admin, case=f"#{other_case.pk}")

    for role in ("owner", "member", "outsider"):
        client = Client()
        client.force_login(world.users[role])
        assert client.get(reverse("audit-list"), {"case": "OP-REDWOOD/1"}).status_code == 403


def test_pages_of_fifty(world: CaseWorld) -> None:
    for n in range(55):
        audit_event_record(action=AuditAction.ACCURACY_VIEWED, actor=world.users["admin"], detail={"pack": f"p{n}"})
    first = _page(world.users["admin"], action="accuracy.viewed")
    assert _rows(first) == 50 and "Page 1 of 2" in first and "page=2" in first
    second = _page(world.users["admin"], action="accuracy.viewed", page=2)
    assert _rows(second) == 5
    assert AuditEvent.objects.filter(action="accuracy.viewed").count() == 55


def test_the_export_records_a_reference_as_the_case_ids_it_named(world: CaseWorld) -> None:
    client = Client()
    client.force_login(world.users["supervisor"])
    response = client.get(reverse("audit-export"), {"case": "OP-REDWOOD/1", "action": "case."})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert "case.created" in body and "search.report_downloaded" not in body
    export = AuditEvent.objects.get(action="audit.exported")
    assert export.detail["filters"] == {"case_ids": [world.case.pk], "action": "case."}
    assert "OP-REDWOOD" not in str(export.detail)  # no case content in an event that carries no case
