"""The candidate list with faces, the comparison view's page, and the feature checklist (issue 13, items 2-3).

Real PostgreSQL, real templates and audit chain; the workbench objects are made directly (tests/factories.py,
no face engine), with a stored evaluation run for the scores' meaning. The browser side (zoom, pan, link,
axe-core) is tests/e2e/test_compare_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.selectors import audit_events_for_reader
from cases.candidate_list import candidates_filter_by_state, thumbnails_grant, thumbnails_granted
from cases.features import FACIAL_FEATURES, features_clean
from cases.models import Candidate, Decision, ProbeFace
from cases.presenters import candidate_score_phrase, decision_feature_rows
from rfr.errors import InvalidInput
from search.models import EvaluationRun
from tests.factories import CaseWorld, build_case_world, client_for, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CHECKLIST = {"nose": "similar", "ears": "not_visible", "eyebrows": "different"}


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> CaseWorld:
    settings.MEDIA_ROOT = tmp_path / "media"
    world = build_case_world()
    workbench_objects_create(world)
    candidate: Candidate = world.extra["candidate"]
    # A stored evaluation the search read its scores against: 1 in 10,000 impostor pairs at 0.9 and above.
    run = EvaluationRun.objects.create(
        pack_key="test-pack@1",
        kind=EvaluationRun.Kind.VERIFICATION,
        dataset_name="UTKFace",
        dataset_is_research=True,
        status=EvaluationRun.Status.DONE,
        figures={"overall": {"impostor_pairs": 200000}},
        curves={"overall": [[0.3, 0.01, 0.01], [0.6, 0.001, 0.05], [0.9, 0.0001, 0.2], [0.95, 0.0, 0.4]]},
    )
    candidate.search.evaluation_run = run
    candidate.search.save(update_fields=["evaluation_run"])
    second = Candidate.objects.create(
        search=candidate.search,
        rank=2,
        score=0.62,
        gallery_id=candidate.gallery_id,
        gallery_name=candidate.gallery_name,
        subject_id=candidate.subject_id,
        subject_ref="CUST-2",
        template_id=candidate.template_id,
        image_id=candidate.image_id,
        outcome=Candidate.Outcome.NOT_A_MATCH,
    )
    world.extra["second"] = second
    return world


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- The candidate list ------------------------------------------------------------------------------------


def test_score_phrase_reads_from_the_stored_evaluation(world: CaseWorld) -> None:
    candidate = Candidate.objects.select_related("search__evaluation_run").get(pk=world.extra["candidate"].pk)
    assert candidate_score_phrase(candidate) == (
        "about 1 in 10,000 different-person pairs score this high on UTKFace (research data set)"
    )
    candidate.score = 0.97  # above every false match the run saw
    assert candidate_score_phrase(candidate) == (
        "none of 200,000 different-person pairs scored this high on UTKFace (research data set)"
    )
    candidate.search.evaluation_run = None
    assert candidate_score_phrase(candidate) == "no measured meaning: no stored evaluation for this pack"


@pytest.mark.parametrize("role", ["owner", "member", "supervisor"])
def test_candidate_list_shows_faces_meaning_and_state_to_people_on_the_case(world: CaseWorld, role: str) -> None:
    search = world.extra["search"]
    first, second = world.extra["candidate"], world.extra["second"]
    response = _page(world.users[role]).get(f"/searches/{search.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'src="/faces/{search.face_id}/crop.png"' in html  # the searched face, aligned
    assert f'src="/candidates/{first.pk}/thumb.png"' in html and f'src="/candidates/{second.pk}/thumb.png"' in html
    assert "about 1 in 10,000 different-person pairs score this high on UTKFace (research data set)" in html
    assert "Not yet reviewed" in html and "Not a match" in html
    assert re.search(r'aria-current="true">All <span class="wb-count">\(2\)', html)


def test_an_outsider_sees_neither_the_list_nor_a_thumbnail(world: CaseWorld) -> None:
    outsider = _page(world.users["outsider"])
    assert outsider.get(f"/searches/{world.extra['search'].pk}/").status_code == 404
    assert outsider.get(f"/candidates/{world.extra['candidate'].pk}/thumb.png").status_code == 404
    assert not _events(AuditAction.CANDIDATE_IMAGE_VIEWED)


def test_filter_by_state_is_a_plain_query_parameter(world: CaseWorld) -> None:
    client = _page(world.users["owner"])
    search = world.extra["search"]
    rows = re.compile(r"Review candidate (\d+)</a>")
    assert rows.findall(client.get(f"/searches/{search.pk}/?state=not_a_match").content.decode()) == ["2"]
    html = client.get(f"/searches/{search.pk}/?state=unreviewed").content.decode()
    assert rows.findall(html) == ["1"]
    assert 'aria-current="true">Not yet reviewed <span class="wb-count">(1)' in html
    assert "Candidates (1 of 2 shown)" in html
    # States nobody is in are not offered; an unknown state shows everyone.
    assert "Released possible matches" not in html
    assert rows.findall(client.get(f"/searches/{search.pk}/?state=bogus").content.decode()) == ["1", "2"]
    empty = client.get(f"/searches/{search.pk}/?state=released").content.decode()
    assert rows.findall(empty) == [] and "No candidate is in this state." in empty


def test_filter_choices_count_every_state(world: CaseWorld) -> None:
    candidates = list(world.extra["search"].candidates.all())
    shown, choices, chosen = candidates_filter_by_state(candidates=candidates, state="awaiting")
    assert shown == [] and chosen == "awaiting"
    assert [(c.key, c.count, c.current) for c in choices] == [
        ("all", 2, False),
        ("unreviewed", 1, False),
        ("awaiting", 0, True),
        ("not_a_match", 1, False),
    ]


def test_one_audit_event_covers_the_list_and_its_thumbnails(world: CaseWorld) -> None:
    search, first, second = world.extra["search"], world.extra["candidate"], world.extra["second"]
    owner = _page(world.users["owner"])
    assert owner.get(f"/searches/{search.pk}/").status_code == 200
    for candidate in (first, second):
        thumb = owner.get(f"/candidates/{candidate.pk}/thumb.png")
        assert thumb.status_code == 200 and thumb["Content-Type"] == "image/png"
        assert thumb.content.startswith(b"\x89PNG") and "no-store" in thumb["Cache-Control"]
    [listed] = _events(AuditAction.SEARCH_CANDIDATES_VIEWED)
    assert listed.detail["thumbnails"] == [first.pk, second.pk]
    assert not _events(AuditAction.CANDIDATE_IMAGE_VIEWED)

    # Fetched without having opened the list (no grant in this session): recorded on its own.
    member = _page(world.users["member"])
    assert member.get(f"/candidates/{first.pk}/thumb.png").status_code == 200
    [alone] = _events(AuditAction.CANDIDATE_IMAGE_VIEWED)
    assert alone.actor_id == world.users["member"].pk and alone.detail["shown"] == "thumbnail"


def test_a_thumbnail_grant_expires(world: CaseWorld) -> None:
    session: dict[str, Any] = {}
    thumbnails_grant(session=session, search_id=7, now=1000.0)  # type: ignore[arg-type]
    assert thumbnails_granted(session=session, search_id=7, now=1000.0 + 60)  # type: ignore[arg-type]
    assert not thumbnails_granted(session=session, search_id=8, now=1000.0)  # type: ignore[arg-type]
    assert not thumbnails_granted(session=session, search_id=7, now=1000.0 + 3600)  # type: ignore[arg-type]


# --- The comparison view -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "member", "supervisor"])
def test_candidate_page_carries_the_geometry_of_both_faces(world: CaseWorld, role: str) -> None:
    candidate, face = world.extra["candidate"], world.extra["face"]
    html = _page(world.users[role]).get(f"/candidates/{candidate.pk}/").content.decode()
    geometry = json.loads(re.search(r'<script id="cmp-geometry" type="application/json">(.*?)</script>', html)[1])  # type: ignore[index]
    assert geometry["probe"] == {"width": 160, "height": 120, "box": face.box, "landmarks": face.landmarks}
    assert geometry["candidate"]["box"] == [50.0, 30.0, 60.0, 60.0]
    assert geometry["crop"]["size"] == 112 and len(geometry["crop"]["landmarks"]) == 5
    # The searched face is outlined on the probe server-side, so it shows without JavaScript too.
    assert '<rect class="cmp-facebox cmp-searched" x="50.0" y="30.0" width="60.0" height="60.0">' in html
    assert "/static/js/compare.js" in html and "Keyboard controls" in html
    assert f'src="/probes/{face.probe_id}/image"' in html and f'src="/candidates/{candidate.pk}/image"' in html


def test_the_searched_face_of_a_group_probe_is_outlined_and_named(world: CaseWorld) -> None:
    face = world.extra["face"]
    other = ProbeFace.objects.get(pk=face.pk)
    other.pk, other.index, other.box = None, 2, [0.0, 0.0, 40.0, 40.0]
    other.save()
    html = _page(world.users["owner"]).get(f"/candidates/{world.extra['candidate'].pk}/").content.decode()
    assert "the searched face is outlined (the image holds 2 faces)" in html
    assert 'alt="Probe image, the searched face outlined"' in html
    # Only the searched face is outlined, not the other one.
    assert html.count('class="cmp-facebox cmp-searched"') == 1 and 'x="50.0" y="30.0"' in html


def test_an_outsider_cannot_open_the_comparison(world: CaseWorld) -> None:
    assert _page(world.users["outsider"]).get(f"/candidates/{world.extra['candidate'].pk}/").status_code == 404


# --- The feature checklist ---------------------------------------------------------------------------------


def test_features_clean_keeps_the_checklist_order_and_drops_blanks() -> None:
    assert features_clean(None) == {}
    cleaned = features_clean({"nose": "similar", "hair": "", "face_shape": "different", "ears": None})
    assert list(cleaned.items()) == [("face_shape", "different"), ("nose", "similar")]
    with pytest.raises(InvalidInput) as bad:
        features_clean({"nostril": "similar", "nose": "probably"})
    assert bad.value.code == "invalid_features"
    assert set(bad.value.fields) == {"features.nostril", "features.nose"}
    with pytest.raises(InvalidInput):
        features_clean(["nose"])  # type: ignore[arg-type]


def test_checklist_recorded_from_the_page_audited_and_shown(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    owner = _page(world.users["owner"])
    page = owner.get(f"/candidates/{candidate.pk}/").content.decode()
    for key, label in FACIAL_FEATURES:
        assert f'name="feature_{key}" value="similar"' in page and f"<legend>{label}</legend>" in page
    response = owner.post(
        f"/candidates/{candidate.pk}/decide/",
        {
            "decision": "not_a_match",
            "rationale": "Different eyebrows",
            **{f"feature_{k}": v for k, v in CHECKLIST.items()},
        },
    )
    assert response.status_code == 302
    decision = Decision.objects.get(candidate=candidate)
    assert decision.features == {"eyebrows": "different", "nose": "similar", "ears": "not_visible"}
    [event] = _events(AuditAction.CANDIDATE_DECIDED)
    assert event.detail["features"] == decision.features and event.detail["rationale"] == "Different eyebrows"
    rows = dict(decision_feature_rows(decision))
    assert rows["Nose"] == "Similar" and rows["Ears"] == "Not visible" and rows["Mouth"] == "Not recorded"
    shown = _page(world.users["member"]).get(f"/candidates/{candidate.pk}/").content.decode()
    assert "<caption>Feature checklist</caption>" in shown
    assert '<th scope="row">Eyebrows</th><td>Different</td>' in shown


def test_a_bad_checklist_from_the_page_records_nothing(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    owner = _page(world.users["owner"])
    response = owner.post(
        f"/candidates/{candidate.pk}/decide/",
        {"decision": "not_a_match", "rationale": "r", "feature_nose": "probably"},
        follow=True,
    )
    assert "unknown features or assessments" in response.content.decode()
    assert not Decision.objects.filter(candidate=candidate).exists()
    assert not _events(AuditAction.CANDIDATE_DECIDED)


def test_checklist_through_the_api(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    api = client_for(world.users["owner"])
    url = f"/api/candidates/{candidate.pk}/decisions/"
    unknown = {"decision": "not_a_match", "rationale": "r", "features": {"nostril": "similar"}}
    bad = api.post(url, unknown, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_features" and "features.nostril" in bad.json()["fields"]
    bad_value = api.post(url, {"decision": "not_a_match", "rationale": "r", "features": {"nose": 3}}, format="json")
    assert bad_value.status_code == 400
    assert not Decision.objects.filter(candidate=candidate).exists()
    ok = api.post(url, {"decision": "not_a_match", "rationale": "Ears differ", "features": CHECKLIST}, format="json")
    assert ok.status_code == 201, ok.json()
    [decision] = ok.json()["decisions"]
    assert decision["features"] == {"eyebrows": "different", "nose": "similar", "ears": "not_visible"}
    # Without a checklist the decision stands as before.
    second = world.extra["second"]
    second.outcome = Candidate.Outcome.UNREVIEWED
    second.save(update_fields=["outcome"])
    plain = api.post(f"/api/candidates/{second.pk}/decisions/", {"decision": "inconclusive", "rationale": "r"})
    assert plain.status_code == 201 and plain.json()["decisions"][0]["features"] == {}


def test_a_pending_first_assessment_s_checklist_is_withheld_in_the_audit_trail(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    api = client_for(world.users["owner"])
    response = api.post(
        f"/api/candidates/{candidate.pk}/decisions/",
        {"decision": "possible_match", "rationale": "Same ears", "features": CHECKLIST},
        format="json",
    )
    assert response.status_code == 201
    events = _events(AuditAction.CANDIDATE_DECIDED)
    [for_supervisor] = audit_events_for_reader(events=events, viewer=world.users["supervisor"])
    assert "features" not in for_supervisor.detail and "withheld" in for_supervisor.detail
    [for_owner] = audit_events_for_reader(events=_events(AuditAction.CANDIDATE_DECIDED), viewer=world.users["owner"])
    assert for_owner.detail["features"] == {"eyebrows": "different", "nose": "similar", "ears": "not_visible"}
