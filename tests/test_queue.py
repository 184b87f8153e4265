"""The review queue, notifications and case housekeeping (cases.queue, cases.notifications, cases.notes,
cases.duplicates, closing and reopening), with an owner, a member, the team's supervisor, a supervisor of
another team and an outsider (tests.factories.build_case_world)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.actions import AuditAction
from audit.models import AuditEvent
from cases.lifecycle import case_create, case_member_remove
from cases.models import Candidate, Case, CaseNote, Notification, Probe
from cases.notes import case_note_add
from cases.queue import queue_counts, reviews_waiting_for
from cases.review import candidate_decision_record
from rfr.errors import InvalidInput
from tests.factories import CaseWorld, build_case_world, client_for, upload, workbench_objects_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _first_assessment(world: CaseWorld, verdict: str = "possible_match") -> Candidate:
    candidate = world.extra["candidate"]
    candidate_decision_record(
        candidate=candidate, reviewer=world.users["owner"], decision=verdict, rationale="Same ear shape"
    )
    candidate.refresh_from_db()
    return candidate


# --- Review queue and notifications ------------------------------------------------------------------------


def test_a_waiting_second_review_reaches_only_eligible_reviewers_and_is_one_click_from_home(world: CaseWorld) -> None:
    candidate = _first_assessment(world)
    users = world.users
    # Notified in the decision's transaction: the team's supervisor only (the member is no second reviewer,
    # the other supervisor and the outsider are not on the case, the author is not told of their own).
    notified = set(
        Notification.objects.filter(kind=Notification.Kind.REVIEW_WAITING).values_list("recipient", flat=True)
    )
    assert notified == {users["supervisor"].pk}
    note = Notification.objects.get(recipient=users["supervisor"])
    assert note.url == reverse("cases:candidate", args=[candidate.pk]) and "possible" not in note.text.lower()

    assert list(reviews_waiting_for(user=users["supervisor"])) == [candidate]
    for role in ("owner", "member", "other_sup", "outsider", "admin"):
        assert not reviews_waiting_for(user=users[role]).exists(), role
    with CaptureQueriesContext(connection) as queries:
        counts = queue_counts(user=users["supervisor"])
    assert (counts.waiting, counts.unread) == (1, 1)
    assert len(queries) <= 2, [q["sql"] for q in queries]  # the navigation's counts stay cheap

    # Home: the waiting review links straight to the candidate, and the nav shows the counts.
    home = _client(users["supervisor"]).get(reverse("home")).content.decode()
    assert f'href="{reverse("cases:candidate", args=[candidate.pk])}"' in home
    assert re.search(r"Review queue <span class=\"nav-count\">1<span class=\"visually-hidden\"> waiting", home)
    # Nobody else sees it, on home or in the queue.
    for role in ("member", "other_sup", "outsider"):
        client = _client(users[role])
        assert reverse("cases:candidate", args=[candidate.pk]) not in client.get(reverse("home")).content.decode()
        assert world.case.reference not in client.get(reverse("cases:queue")).content.decode(), role


def test_the_queue_view_is_audited_and_lists_disputes_and_team_searches(world: CaseWorld) -> None:
    candidate = _first_assessment(world)
    supervisor = world.users["supervisor"]
    candidate_decision_record(candidate=candidate, reviewer=supervisor, decision="not_a_match", rationale="Ears differ")
    candidate.refresh_from_db()
    assert candidate.outcome == Candidate.Outcome.DISPUTED

    response = _client(supervisor).get(reverse("cases:queue"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Disputed decisions (1)" in html and "Second reviews waiting for you (0)" in html
    assert f"Search {world.extra['search'].pk}" in html  # the team's recent searches
    event = AuditEvent.objects.filter(action=AuditAction.QUEUE_VIEWED, actor=supervisor).get()
    assert event.detail == {"waiting": 0, "disputed": 1, "outcomes": 0, "searches": 1}

    # The owner is told of the dispute and sees the outcome on their queue; the member sees it too.
    assert Notification.objects.filter(recipient=world.users["owner"], kind=Notification.Kind.DISPUTED).count() == 1
    for role in ("owner", "member"):
        html = _client(world.users[role]).get(reverse("cases:queue")).content.decode()
        assert "Released and disputed outcomes on your cases (1)" in html, role


def test_a_release_notifies_the_owner_who_opens_it_in_one_click(world: CaseWorld) -> None:
    candidate = _first_assessment(world)
    candidate_decision_record(
        candidate=candidate, reviewer=world.users["supervisor"], decision="possible_match", rationale="Agree"
    )
    owner = world.users["owner"]
    note = Notification.objects.get(recipient=owner, kind=Notification.Kind.RELEASED)
    assert "intelligence only" in note.text
    client = _client(owner)
    page = client.get(reverse("cases:notifications")).content.decode()
    assert note.text in page
    assert AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_VIEWED, actor=owner).count() == 1
    opened = client.post(reverse("cases:notification-open", args=[note.pk]))
    assert opened.status_code == 302 and opened["Location"] == reverse("cases:candidate", args=[candidate.pk])
    note.refresh_from_db()
    assert note.read_at is not None
    assert AuditEvent.objects.get(action=AuditAction.NOTIFICATION_READ).detail == {"notification_ids": [note.pk]}
    assert queue_counts(user=owner).unread == 0
    # Someone else's notification does not exist for them.
    assert _client(world.users["outsider"]).post(reverse("cases:notification-open", args=[note.pk])).status_code == 404


def test_notifications_follow_need_to_know(world: CaseWorld) -> None:
    """A member who loses the case no longer sees notifications about it."""
    owner, member = world.users["owner"], world.users["member"]
    candidate = world.extra["candidate"]
    # A supervisor's own first assessment waits for anyone else on the case: the owner and the member.
    candidate_decision_record(
        candidate=candidate, reviewer=world.users["supervisor"], decision="not_a_match", rationale="Different"
    )
    assert set(Notification.objects.values_list("recipient", flat=True)) == {owner.pk, member.pk}
    assert queue_counts(user=member).unread == 1 and queue_counts(user=member).waiting == 1
    case_member_remove(case=world.case, user=member, removed_by=owner)
    assert queue_counts(user=member).unread == 0 and queue_counts(user=member).waiting == 0
    assert world.case.reference not in _client(member).get(reverse("cases:notifications")).content.decode()


def test_mark_all_read(world: CaseWorld) -> None:
    _first_assessment(world)
    client = _client(world.users["supervisor"])
    assert client.post(reverse("cases:notifications-read")).status_code == 302
    assert queue_counts(user=world.users["supervisor"]).unread == 0


# --- Case notes --------------------------------------------------------------------------------------------


def test_notes_are_append_only_with_history_and_audited(world: CaseWorld) -> None:
    owner, member = world.users["owner"], world.users["member"]
    client = _client(owner)
    response = client.post(reverse("cases:note-new", args=[world.case.pk]), {"text": "Witness called back."})
    assert response.status_code == 302 and response["Location"].endswith("#notes")
    note = CaseNote.objects.get()
    url = reverse("cases:note", kwargs={"case_id": world.case.pk, "note_id": note.pk})
    # Only the author edits, and an edit is a new version; the old one stays.
    assert _client(member).post(url, {"text": "Changed by someone else"}).status_code == 403
    assert client.post(url, {"text": "Witness called back twice."}).status_code == 302
    versions = list(CaseNote.objects.order_by("version").values_list("version", "text", "replaces"))
    assert versions == [(1, "Witness called back.", None), (2, "Witness called back twice.", note.pk)]
    # An edit of a version someone has edited since is refused (the form names the version it edits).
    stale = client.post(url, {"text": "Stale edit", "replaces": str(note.pk)})
    assert stale.status_code == 302 and stale["Location"] == url
    assert CaseNote.objects.count() == 2
    # The case page shows the current version; the note page shows both.
    detail = client.get(reverse("cases:detail", args=[world.case.pk])).content.decode()
    assert "Witness called back twice." in detail and "Witness called back.<" not in detail
    history = _client(member).get(url).content.decode()
    assert "Witness called back." in history and "Witness called back twice." in history
    actions = list(AuditEvent.objects.filter(case_id=world.case.pk).values_list("action", flat=True))
    assert actions.count(AuditAction.CASE_NOTE_ADDED) == 1 and actions.count(AuditAction.CASE_NOTE_EDITED) == 1
    assert _client(world.users["outsider"]).get(url).status_code == 404
    # An empty note is refused with its reason.
    with pytest.raises(InvalidInput):
        case_note_add(case=world.case, author=owner, text="   ")


# --- Closing and reopening ---------------------------------------------------------------------------------


def test_close_needs_confirmation_and_a_reason_and_reopen_is_a_supervisors(world: CaseWorld) -> None:
    users, case = world.users, world.case
    url = reverse("cases:close", args=[case.pk])
    owner = _client(users["owner"])
    detail = owner.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert f'href="{url}"' in detail
    assert f'href="{url}"' not in _client(users["member"]).get(reverse("cases:detail", args=[case.pk])).content.decode()
    confirm = owner.get(url)
    assert confirm.status_code == 200 and "Close case" in confirm.content.decode()
    assert owner.post(url, {"reason": ""}).status_code == 400  # a reason is required
    assert Case.objects.get(pk=case.pk).is_open
    assert owner.post(url, {"reason": "Suspect charged"}).status_code == 302
    case.refresh_from_db()
    assert not case.is_open
    assert AuditEvent.objects.get(action=AuditAction.CASE_CLOSED).detail == {"reason": "Suspect charged"}

    reopen = reverse("cases:reopen", args=[case.pk])
    assert f'href="{reopen}"' not in owner.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert owner.post(reopen, {"reason": "New evidence"}).status_code == 403
    assert _client(users["other_sup"]).get(reopen).status_code == 404
    supervisor = _client(users["supervisor"])
    assert f'href="{reopen}"' in supervisor.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert supervisor.post(reopen, {"reason": ""}).status_code == 400
    assert supervisor.post(reopen, {"reason": "New evidence"}).status_code == 302
    case.refresh_from_db()
    assert case.is_open
    assert AuditEvent.objects.get(action=AuditAction.CASE_REOPENED).detail == {"reason": "New evidence"}


# --- Duplicate uploads and unique references ---------------------------------------------------------------


def test_an_upload_of_an_image_already_in_the_case_is_flagged_with_a_link(world: CaseWorld) -> None:
    first = world.extra["probe"]
    data = first.original.read()
    client = client_for(world.users["owner"])
    # The processing task is queued on commit, which a test's transaction never reaches: the upload is tested.
    response = upload(client, world.case, data, "again.png")
    assert response.status_code == 201, response.json()
    duplicates = response.json()["duplicates"]
    assert [d["id"] for d in duplicates] == [first.pk]
    assert duplicates[0]["url"] == reverse("cases:probe", args=[first.pk])
    page = _client(world.users["member"]).get(reverse("cases:probe", args=[response.json()["id"]])).content.decode()
    assert "The same image is already in this case" in page and reverse("cases:probe", args=[first.pk]) in page
    # The upload page says so too, in the upload's answer.
    page_upload = _client(world.users["member"]).post(
        reverse("cases:probe-upload", args=[world.case.pk]),
        {"images": _file(data), "source": "cctv", "lawfully_held": "on"},
        follow=True,
    )
    assert "is the same image (same sha256) as probe" in page_upload.content.decode()
    # The first probe was not a duplicate when it came, but now names the second.
    later = list(Probe.objects.filter(case=world.case).exclude(pk=first.pk).order_by("pk").values_list("pk", flat=True))
    assert response.json()["id"] in later
    assert [d["id"] for d in client.get(f"/api/probes/{first.pk}/").json()["duplicates"]] == later


def _file(data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("third.png", data)


def test_case_references_are_unique_whatever_the_letter_case(world: CaseWorld) -> None:
    owner = world.users["owner"]
    with pytest.raises(InvalidInput) as refused:
        case_create(
            owner=owner, reference="op-redwood/1", title="t", purpose="suspect", offence_category="", legal_basis="b"
        )
    assert refused.value.code == "reference_in_use" and "reference" in refused.value.fields
    # The page says so on the form; the API as a 400 with the field.
    page = _client(owner).post(
        reverse("cases:create"), {"reference": "OP-REDWOOD/1", "title": "t", "purpose": "suspect", "legal_basis": "b"}
    )
    assert page.status_code == 200 and "already used by another case" in page.content.decode()
    api = client_for(owner).post(
        "/api/cases/", {"reference": "OP-REDWOOD/1", "title": "t", "purpose": "suspect", "legal_basis": "b"}
    )
    assert api.status_code == 400 and api.json()["error"] == "reference_in_use"
    # The database holds the rule too.
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(reference="Op-Redwood/1", title="t", purpose="suspect", legal_basis="b", owner=owner)
