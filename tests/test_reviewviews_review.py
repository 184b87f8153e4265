"""A supervisor cannot end review alone (issue 9, finding 4).

A second reviewer's (supervisor's or designated reviewer's) own first assessment, whatever its verdict, is
never the second review: the candidate awaits a different person's assessment, the label does not say the
verdict, and the first rationale is withheld from that person until they have recorded theirs. An operator's
"not a match" stays final (only a lead goes to a second review).

Real PostgreSQL; workbench objects made directly (no face engine); decisions through the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from cases.models import Candidate, Decision
from cases.presenters import candidate_label
from cases.review import WITHHELD_TEXT
from tests.factories import CaseWorld, build_case_world, client_for, workbench_objects_create
from tests.test_workbench_pages import pdf_text

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SUPERVISOR_RATIONALE = "SUPRATIONALE-different-chin-6612"


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> CaseWorld:
    settings.MEDIA_ROOT = tmp_path / "media"
    world = build_case_world()
    workbench_objects_create(world)
    return world


def _decide(user: Any, candidate: Candidate, decision: str, rationale: str) -> Any:
    return client_for(user).post(
        f"/api/candidates/{candidate.pk}/decisions/", {"decision": decision, "rationale": rationale}, format="json"
    )


def _api_candidate(user: Any, candidate: Candidate) -> dict[str, Any]:
    body = client_for(user).get(f"/api/searches/{candidate.search_id}/").json()
    return next(c for c in body["candidates"] if c["id"] == candidate.pk)


@pytest.mark.parametrize("verdict", ["not_a_match", "inconclusive", "possible_match"])
def test_a_supervisor_s_first_assessment_does_not_end_review(world: CaseWorld, verdict: str) -> None:
    supervisor, owner = world.users["supervisor"], world.users["owner"]
    candidate: Candidate = world.extra["candidate"]

    first = _decide(supervisor, candidate, verdict, SUPERVISOR_RATIONALE)
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["outcome"] == "awaiting_review" and body["released"] is False
    candidate.refresh_from_db()
    assert candidate.outcome == Candidate.Outcome.AWAITING_REVIEW
    # The words shown do not give the verdict away to the next person.
    label = candidate_label(candidate)
    assert "awaiting" in label and "Not a match" not in label and "Possible match" not in label
    assert Decision.objects.get(candidate=candidate).stage == Decision.Stage.FIRST

    # The supervisor cannot give the second assessment to their own first.
    again = _decide(supervisor, candidate, verdict, "once more")
    assert again.status_code == 409 and again.json()["error"] == "already_decided"

    # The operator has not seen the supervisor's rationale, and can still assess the candidate.
    listed = _api_candidate(owner, candidate)
    assert listed["decisions"] == [] and listed["decisions_withheld"] == 1
    page_client = Client()
    page_client.force_login(owner)
    page = page_client.get(f"/candidates/{candidate.pk}/").content.decode()
    assert SUPERVISOR_RATIONALE not in page and WITHHELD_TEXT in page and 'name="rationale"' in page
    timeline = client_for(owner).get(f"/api/cases/{world.case.pk}/audit/").json()["results"]
    assert SUPERVISOR_RATIONALE not in str(timeline)
    report = page_client.get(f"/searches/{candidate.search_id}/report.pdf")
    assert report.status_code == 200 and SUPERVISOR_RATIONALE not in pdf_text(report.content)

    second = _decide(owner, candidate, verdict, "Operator agrees")
    assert second.status_code == 201, second.json()
    candidate.refresh_from_db()
    expected = {
        "not_a_match": Candidate.Outcome.NOT_A_MATCH,
        "inconclusive": Candidate.Outcome.INCONCLUSIVE,
        "possible_match": Candidate.Outcome.RELEASED,
    }[verdict]
    assert candidate.outcome == expected
    stages = list(Decision.objects.filter(candidate=candidate).values_list("stage", "reviewer__username"))
    assert stages == [("first", "supervisor"), ("second", "owner")]
    # Both are now shown to the people on the case.
    assert SUPERVISOR_RATIONALE in pdf_text(page_client.get(f"/searches/{candidate.search_id}/report.pdf").content)
    assert [d["rationale"] for d in _api_candidate(owner, candidate)["decisions"]] == [
        SUPERVISOR_RATIONALE,
        "Operator agrees",
    ]
    events = AuditEvent.objects.filter(action="candidate.decided", case_id=world.case.pk).order_by("seq")
    assert [(e.detail["stage"], e.detail["outcome"]) for e in events] == [
        ("first", "awaiting_review"),
        ("second", expected.value),
    ]


def test_when_the_operator_disagrees_with_the_supervisor_the_candidate_is_disputed(world: CaseWorld) -> None:
    candidate: Candidate = world.extra["candidate"]
    assert _decide(world.users["supervisor"], candidate, "not_a_match", SUPERVISOR_RATIONALE).status_code == 201
    response = _decide(world.users["member"], candidate, "possible_match", "Looks like him to me")
    assert response.status_code == 201, response.json()
    assert response.json()["outcome"] == "disputed" and response.json()["released"] is False
    # Nobody else can add a third assessment.
    third = _decide(world.users["owner"], candidate, "not_a_match", "x")
    assert third.status_code == 409 and third.json()["error"] == "already_reviewed"


def test_an_operator_s_not_a_match_is_still_final(world: CaseWorld) -> None:
    candidate: Candidate = world.extra["candidate"]
    first = _decide(world.users["owner"], candidate, "not_a_match", "Different nose")
    assert first.status_code == 201 and first.json()["outcome"] == "not_a_match"
    review = _decide(world.users["supervisor"], candidate, "possible_match", "y")
    assert review.status_code == 409 and review.json()["error"] == "review_not_needed"


def test_an_operator_s_possible_match_still_needs_a_second_reviewer(world: CaseWorld) -> None:
    candidate: Candidate = world.extra["candidate"]
    assert _decide(world.users["owner"], candidate, "possible_match", "Same scar").json()["outcome"] == (
        "possible_match"
    )
    refused = _decide(world.users["member"], candidate, "possible_match", "Agree")
    assert refused.status_code == 403 and refused.json()["error"] == "second_reviewer_required"
    agreed = _decide(world.users["supervisor"], candidate, "possible_match", "Agree")
    assert agreed.status_code == 201 and agreed.json()["released"] is True
