"""A candidate whose gallery subject was removed stays in the case history at its rank, marked removed in
every list, page, API response and report, with no subject reference; a decision on it is refused with a
message saying why (409 in the API, a message on the page)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client

from audit.models import AuditEvent
from cases import review
from cases.models import Candidate, Decision
from rfr.errors import Conflict
from search import galleries
from search.models import GalleryImage, Subject, Template
from tests.factories import build_case_world, client_for, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

REMOVED_REF = "CUST-1"  # the reference workbench_objects_create gives the candidate's subject
KEPT_REF = "CUST-KEPT-77"


def _pdf_text(data: bytes, tmp_path: Any) -> str:
    """The report's text as pdftotext reads it (poppler-utils), or as test_workbench_pages reads streams."""
    if shutil.which("pdftotext"):
        path = tmp_path / "report.pdf"
        path.write_bytes(data)
        text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    else:
        from tests.test_workbench_pages import pdf_text

        text = pdf_text(data)
    return " ".join(text.split())


@pytest.fixture
def removed(gallery_env: Any) -> dict[str, Any]:
    """A finished search with two candidates: rank 1 (first assessed as a possible match), whose subject is then
    removed on request, and rank 2, whose subject stays."""
    world = build_case_world()
    workbench_objects_create(world)
    search, candidate, gallery = (world.extra[k] for k in ("search", "candidate", "gallery"))
    owner = world.users["owner"]
    kept = Subject.objects.create(gallery=gallery, external_ref=KEPT_REF)
    image = GalleryImage(gallery=gallery, subject=kept, sha256="b" * 64, original_filename="k.png")
    image.file.save("k.png", ContentFile(b"kept"), save=False)
    image.save()
    template = Template.objects.create(
        gallery=gallery,
        subject=kept,
        image=image,
        pack_key="test-pack@1",
        box=[0, 0, 1, 1],
        landmarks=[],
        embedding=np.full(128, 0.5, "<f4").tobytes(),
    )
    other = Candidate.objects.create(
        search=search,
        rank=2,
        score=0.5,
        gallery_id=gallery.pk,
        gallery_name=gallery.name,
        subject_id=kept.pk,
        subject_ref=KEPT_REF,
        template_id=template.pk,
        image_id=image.pk,
    )
    review.candidate_decision_record(
        candidate=candidate, reviewer=owner, decision="possible_match", rationale="Same ear shape and scar"
    )
    detail = galleries.subject_delete(
        subject=Subject.objects.get(external_ref=REMOVED_REF), reason="deletion on application, not convicted"
    )
    assert detail["candidates_marked_removed"] == 1
    candidate.refresh_from_db()
    return {"world": world, "search": search, "candidate": candidate, "other": other, "owner": owner}


def test_the_candidate_row_survives_marked_removed_without_the_reference(removed: dict[str, Any]) -> None:
    candidate, other = removed["candidate"], removed["other"]
    assert candidate.rank == 1 and candidate.outcome == Candidate.Outcome.POSSIBLE_MATCH
    assert candidate.subject_removed and candidate.subject_removal == Candidate.Removal.REQUEST
    assert candidate.subject_ref == ""
    assert Decision.objects.filter(candidate=candidate).count() == 1  # case history kept
    other.refresh_from_db()
    assert not other.subject_removed and other.subject_ref == KEPT_REF


def test_the_api_marks_it_removed_and_refuses_a_decision(removed: dict[str, Any]) -> None:
    world, search, candidate = removed["world"], removed["search"], removed["candidate"]
    owner = client_for(world.users["owner"])
    response = owner.get(f"/api/searches/{search.pk}/")
    assert response.status_code == 200
    listed = {c["rank"]: c for c in response.json()["candidates"]}
    assert listed[1]["subject_ref"] is None and listed[1]["subject_removed"] is True
    assert listed[1]["subject_removal"]["cause"] == "request"
    assert "removed from the gallery" in listed[1]["subject_removal"]["text"]
    assert "removed from the gallery" in listed[1]["label"]
    assert "intelligence only" in listed[1]["label"]  # still worded as a possible match at most
    assert listed[2]["subject_ref"] == KEPT_REF and listed[2]["subject_removed"] is False
    assert listed[2]["subject_removal"] is None
    assert REMOVED_REF not in response.content.decode()

    decisions_before = Decision.objects.count()
    events_before = AuditEvent.objects.filter(action="candidate.decided").count()
    for user in ("supervisor", "member"):
        refused = client_for(world.users[user]).post(
            f"/api/candidates/{candidate.pk}/decisions/",
            {"decision": "possible_match", "rationale": "Agree"},
            format="json",
        )
        assert refused.status_code == 409, refused.content
        body = refused.json()
        assert body["error"] == "candidate_subject_removed"
        assert "removed from the gallery" in body["message"] and "no decision can be recorded" in body["message"]
    assert Decision.objects.count() == decisions_before
    assert AuditEvent.objects.filter(action="candidate.decided").count() == events_before
    with pytest.raises(Conflict, match="no decision can be recorded"):
        review.candidate_decision_record(
            candidate=candidate, reviewer=world.users["supervisor"], decision="not_a_match", rationale="x"
        )


def test_the_pages_mark_it_removed_and_refuse_a_decision(removed: dict[str, Any]) -> None:
    world, search, candidate = removed["world"], removed["search"], removed["candidate"]
    client = Client()
    client.force_login(world.users["supervisor"])
    listing = client.get(f"/searches/{search.pk}/").content.decode()
    assert "removed from the gallery" in listing and KEPT_REF in listing
    assert REMOVED_REF not in listing

    page = client.get(f"/candidates/{candidate.pk}/").content.decode()
    assert "removed from the gallery" in page and "no decision can be recorded" in page
    assert REMOVED_REF not in page
    assert "Record decision" not in page  # no form to fill in
    assert client.get(f"/candidates/{candidate.pk}/image").status_code == 404

    response = client.post(
        f"/candidates/{candidate.pk}/decide/", {"decision": "possible_match", "rationale": "Agree"}, follow=True
    )
    assert response.status_code == 200
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "no decision can be recorded" in shown and "removed from the gallery" in shown
    assert Decision.objects.filter(candidate=candidate).count() == 1


def test_the_report_marks_it_removed(removed: dict[str, Any], tmp_path: Any) -> None:
    world, search = removed["world"], removed["search"]
    client = Client()
    client.force_login(world.users["owner"])
    report = client.get(f"/searches/{search.pk}/report.pdf")
    assert report.status_code == 200 and report.content.startswith(b"%PDF")
    text = _pdf_text(report.content, tmp_path)
    assert "removed from the gallery" in text and KEPT_REF in text
    assert REMOVED_REF not in text


def test_a_removal_that_lands_while_a_search_stores_its_candidates(
    gallery_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hits are checked against the database, then the subject is removed, then the candidates are stored:
    the removed subject must not come back as a candidate."""
    from cases import searches
    from cases.models import Search
    from search.index.changes import index_changes_record

    world = build_case_world()
    workbench_objects_create(world)
    gallery, face = world.extra["gallery"], world.extra["face"]
    subject = Subject.objects.get(external_ref=REMOVED_REF)
    template = Template.objects.get(subject=subject)
    index_changes_record(gallery_id=gallery.pk, pack_key="test-pack@1", changes=[(template.pk, "add")])
    search = Search.objects.create(
        case=world.case,
        face=face,
        requested_by=world.users["owner"],
        galleries=[{"id": gallery.pk, "name": gallery.name}],
        threshold=0.3,
        threshold_source=Search.ThresholdSource.SETTING,
        justification="Race",
        pack_key="test-pack@1",
    )
    checked = searches.search_galleries

    def checked_then_removed(**kwargs: Any) -> Any:
        hits = checked(**kwargs)
        assert [hit.subject_ref for hit in hits] == [REMOVED_REF]
        galleries.subject_delete(subject=subject, reason="deletion on application")
        return hits

    monkeypatch.setattr(searches, "search_galleries", checked_then_removed)
    searches.search_run(search_id=search.pk)
    search.refresh_from_db()
    assert search.status == Search.Status.DONE
    assert not Candidate.objects.filter(search=search).exists()
