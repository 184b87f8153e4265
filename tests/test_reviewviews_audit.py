"""Audit views respect need-to-know and the independence of the second review (issue 9, finding 3).

- Case content in audit events (justifications, rationales, subject references, probe file names, case
  references) is shown only to people on the case: an admin with every audit right but not on the case reads
  the action rows (action, actor, target, case id) on /audit/, in the CSV and in the Django admin, and none of
  the content.
- A first assessment awaiting its second review is withheld from everyone but its author on /audit/, the CSV,
  the case audit API, the timeline, the candidate page and the candidate API, until the second reviewer has
  recorded their own; then both are shown to the people on the case (never to the admin).

Real PostgreSQL, real services writing the events; workbench objects made directly (no face engine).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from audit.selectors import REDACTED_TEXT
from audit.verify import audit_chain_verify
from cases.models import Candidate
from cases.probes import probe_upload
from cases.review import WITHHELD_TEXT, candidate_decision_record, candidate_view_record
from cases.searches import search_request
from tests.factories import CaseWorld, build_case_world, client_for, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

FILENAME = "SECRETCAM-doorbell-informant-7781.png"
JUSTIFICATION = "JUSTIFY-Operation-Lantern-witness-tip-5531"
SUBJECT_REF = "CUSTREF-SUBJECT-4471"
FIRST_RATIONALE = "FIRSTRATIONALE-scar-left-eyebrow-9921"
SECOND_RATIONALE = "SECONDRATIONALE-agree-ear-lobe-3310"
CASE_REFERENCE = "OP-REDWOOD/1"


def _png() -> bytes:
    image = np.full((120, 160, 3), 90, np.uint8)
    cv2.rectangle(image, (40, 30), (120, 90), (10, 200, 60), -1)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> CaseWorld:
    """The six-role world, with case content written to the audit trail by the real services: a probe
    upload (file name), a search request (justification), a view of a candidate (subject reference) and the
    owner's first assessment of it as a possible match (rationale), awaiting its second review."""
    settings.MEDIA_ROOT = tmp_path / "media"
    world = build_case_world()
    workbench_objects_create(world)
    owner = world.users["owner"]
    candidate: Candidate = world.extra["candidate"]
    Candidate.objects.filter(pk=candidate.pk).update(subject_ref=SUBJECT_REF)
    candidate.refresh_from_db()
    probe_upload(case=world.case, uploaded_by=owner, data=_png(), filename=FILENAME, source="cctv", lawfully_held=True)
    gallery_ids = [world.extra["gallery"].pk]
    search_request(face=world.extra["face"], requested_by=owner, gallery_ids=gallery_ids, justification=JUSTIFICATION)
    # The member is in team B: their event on this team A case falls in team B's supervisor's audit scope.
    candidate_view_record(candidate=candidate, viewer=world.users["member"])
    candidate_decision_record(candidate=candidate, reviewer=owner, decision="possible_match", rationale=FIRST_RATIONALE)
    world.extra["candidate"] = candidate
    return world


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _audit_page(user: Any, **params: Any) -> str:
    response = _client(user).get(reverse("audit-list"), params)
    assert response.status_code == 200
    return response.content.decode().split('<table class="audit-events">', 1)[1]


def _csv(user: Any, **params: Any) -> list[dict[str, str]]:
    response = _client(user).get(reverse("audit-export"), params)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return list(csv.DictReader(io.StringIO(body)))


def _case_api(user: Any, world: CaseWorld) -> str:
    response = client_for(user).get(f"/api/cases/{world.case.pk}/audit/", {"page_size": 500})
    assert response.status_code == 200
    return json.dumps(response.json())


def _timeline(user: Any, world: CaseWorld) -> str:
    response = _client(user).get(f"/cases/{world.case.pk}/timeline/")
    assert response.status_code == 200
    return response.content.decode()


def _api_candidate(user: Any, candidate: Candidate) -> dict[str, Any]:
    body = client_for(user).get(f"/api/searches/{candidate.search_id}/").json()
    return next(c for c in body["candidates"] if c["id"] == candidate.pk)


CONTENT = (FILENAME, JUSTIFICATION, SUBJECT_REF, FIRST_RATIONALE, CASE_REFERENCE)


def test_an_admin_not_on_the_case_reads_the_actions_but_no_case_content(world: CaseWorld) -> None:
    admin = world.users["admin"]
    assert _client(admin).get(f"/cases/{world.case.pk}/").status_code == 404  # not on the case

    page = _audit_page(admin)
    for action in ("case.created", "probe.uploaded", "search.requested", "candidate.viewed", "candidate.decided"):
        assert f"<code>{action}</code>" in page, action
    for text in CONTENT:
        assert text not in page, text
    assert REDACTED_TEXT in page

    rows = _csv(admin)
    on_case = [r for r in rows if r["case_id"] == str(world.case.pk)]
    actions = {r["action"] for r in on_case}
    assert {"case.created", "probe.uploaded", "search.requested", "candidate.viewed", "candidate.decided"} <= actions
    dump = json.dumps(rows)
    for text in CONTENT:
        assert text not in dump, text
    for row in on_case:
        detail = json.loads(row["detail"])
        assert detail["redacted"] == REDACTED_TEXT
        assert row["actor_username"] and row["target_type"] and row["created_at"]
    # What is safe stays: the search's settings and ids, who was added to the case.
    requested = json.loads(next(r for r in on_case if r["action"] == "search.requested")["detail"])
    assert requested["face_id"] == world.extra["face"].pk and "justification" not in requested
    added = json.loads(next(r for r in on_case if r["action"] == "case.member_added")["detail"])
    assert added["username"] == "member"

    # The read-only Django admin shows the same.
    decided = AuditEvent.objects.get(action="candidate.decided", case_id=world.case.pk)
    change = _client(admin).get(reverse("admin:audit_auditevent_change", args=[decided.pk]))
    assert change.status_code == 200
    html = change.content.decode()
    assert FIRST_RATIONALE not in html and SUBJECT_REF not in html and REDACTED_TEXT in html

    # The rows themselves are untouched, and the chain still verifies.
    assert decided.detail["rationale"] == FIRST_RATIONALE
    assert audit_chain_verify().ok


def test_a_supervisor_of_another_team_reads_their_member_s_events_without_the_case_content(
    world: CaseWorld,
) -> None:
    other_sup = world.users["other_sup"]
    page = _audit_page(other_sup)
    assert "<code>candidate.viewed</code>" in page  # the member's event: in team B's scope
    assert SUBJECT_REF not in page and REDACTED_TEXT in page
    rows = [r for r in _csv(other_sup) if r["case_id"] == str(world.case.pk)]
    assert rows and all(json.loads(r["detail"]).get("redacted") == REDACTED_TEXT for r in rows)
    assert SUBJECT_REF not in json.dumps(rows)


def test_people_on_the_case_read_its_content_but_not_a_pending_first_assessment(world: CaseWorld) -> None:
    supervisor = world.users["supervisor"]  # on the case, as its team's supervisor
    page = _audit_page(supervisor)
    assert FILENAME in page and JUSTIFICATION in page and SUBJECT_REF in page
    assert FIRST_RATIONALE not in page and WITHHELD_TEXT in page
    rows = _csv(supervisor)
    decided = next(r for r in rows if r["action"] == "candidate.decided")
    detail = json.loads(decided["detail"])
    assert detail["withheld"] == WITHHELD_TEXT and "decision" not in detail and "outcome" not in detail
    assert FIRST_RATIONALE not in json.dumps(rows) and JUSTIFICATION in json.dumps(rows)


def test_the_second_reviewer_reads_the_first_rationale_nowhere_before_deciding_and_everywhere_after(
    world: CaseWorld,
) -> None:
    supervisor, owner, admin = world.users["supervisor"], world.users["owner"], world.users["admin"]
    candidate: Candidate = world.extra["candidate"]

    def everywhere(user: Any) -> str:
        return "\n".join(
            [
                _case_api(user, world),
                _audit_page(user),
                json.dumps(_csv(user)),
                _timeline(user, world),
                _client(user).get(f"/candidates/{candidate.pk}/").content.decode(),
                json.dumps(_api_candidate(user, candidate)),
            ]
        )

    before = everywhere(supervisor)
    assert FIRST_RATIONALE not in before and WITHHELD_TEXT in before
    assert _api_candidate(supervisor, candidate)["decisions_withheld"] == 1
    # A member of the case, who could not give the second review, is no different.
    member_view = _case_api(world.users["member"], world) + _timeline(world.users["member"], world)
    assert FIRST_RATIONALE not in member_view
    # The author reads their own everywhere they may look (the owner has no /audit/ rights).
    mine = _case_api(owner, world) + _timeline(owner, world) + json.dumps(_api_candidate(owner, candidate))
    assert FIRST_RATIONALE in mine

    response = client_for(supervisor).post(
        f"/api/candidates/{candidate.pk}/decisions/",
        {"decision": "possible_match", "rationale": SECOND_RATIONALE},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["released"] is True

    after = everywhere(supervisor)
    assert FIRST_RATIONALE in after and SECOND_RATIONALE in after
    member_after = _case_api(world.users["member"], world)
    assert FIRST_RATIONALE in member_after and SECOND_RATIONALE in member_after
    # The admin, not on the case, reads neither, before or after.
    admin_view = _audit_page(admin) + json.dumps(_csv(admin))
    assert "candidate.decided" in admin_view
    assert FIRST_RATIONALE not in admin_view and SECOND_RATIONALE not in admin_view
