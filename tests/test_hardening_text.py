"""Every free-text field has a stated length limit (rfr/limits.py), enforced whatever the path (page, API,
service), before anything is stored or audited; and the PDF report lays out texts of any allowed length."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from cases.models import Decision, Search
from cases.reports import search_report_pdf
from cases.review import candidate_decision_record
from cases.searches import search_request
from rfr.errors import InvalidInput
from rfr.limits import TEXT_LIMITS
from tests.factories import CaseWorld, build_case_world, client_for, workbench_objects_create
from tests.test_workbench_pages import pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


def text_of(length: int, end: str) -> str:
    """Prose of exactly `length` characters ending with the marker `end`, with one 300-character word in it
    (a pasted hash or address must wrap too)."""
    words = "the subject was seen near the station on camera three at nine in the evening "
    long_word = "x" * 300
    body = (long_word + " " + words * (length // len(words) + 1))[: length - len(end) - 1]
    text = f"{body} {end}"
    assert len(text) == length
    return text


def page_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def audit_mentions(text: str) -> bool:
    return any(text[:200] in str(event.detail) for event in AuditEvent.objects.all())


def test_the_limits_are_stated_in_one_place() -> None:
    assert TEXT_LIMITS["justification"] == TEXT_LIMITS["rationale"] == 4000


def test_an_over_long_justification_is_refused_on_the_api_and_never_audited(world: CaseWorld) -> None:
    face = world.extra["face"]
    justification = text_of(4001, "END-OF-JUSTIFICATION")
    searches_before = Search.objects.count()
    response = client_for(world.users["owner"]).post(
        f"/api/faces/{face.pk}/searches/",
        {"galleries": [world.extra["gallery"].pk], "justification": justification},
        format="json",
    )
    assert response.status_code == 400, response.content[:300]
    assert "justification" in response.json()["fields"]
    assert Search.objects.count() == searches_before
    assert not audit_mentions(justification)


def test_a_2_mb_justification_is_refused_before_it_is_parsed(world: CaseWorld) -> None:
    face = world.extra["face"]
    justification = "a" * (2 * 1024 * 1024)
    response = client_for(world.users["owner"]).post(
        f"/api/faces/{face.pk}/searches/",
        {"galleries": [world.extra["gallery"].pk], "justification": justification},
        format="json",
    )
    assert response.status_code == 413, response.content[:300]
    assert response.json()["error"] == "request_too_large"
    assert not Search.objects.filter(justification__startswith="aaaa").exists()
    assert not audit_mentions(justification)


def test_an_over_long_justification_is_refused_on_the_page(world: CaseWorld) -> None:
    face = world.extra["face"]
    justification = text_of(4001, "END-OF-JUSTIFICATION")
    searches_before = Search.objects.count()
    response = page_client(world.users["owner"]).post(
        f"/faces/{face.pk}/search/",
        {"galleries": [str(world.extra["gallery"].pk)], "justification": justification},
    )
    assert response.status_code in (200, 400)
    assert "the limit is 4,000" in response.content.decode()
    assert Search.objects.count() == searches_before
    assert not audit_mentions(justification)


def test_the_service_refuses_for_any_caller_and_accepts_the_limit_exactly(world: CaseWorld) -> None:
    face, gallery = world.extra["face"], world.extra["gallery"]
    with pytest.raises(InvalidInput) as refused:
        search_request(face=face, requested_by=world.users["owner"], gallery_ids=[gallery.pk], justification="j" * 4001)
    assert refused.value.code == "text_too_long"
    assert refused.value.fields == {"justification": [refused.value.message]}
    search = search_request(
        face=face, requested_by=world.users["owner"], gallery_ids=[gallery.pk], justification="j" * 4000
    )
    assert len(search.justification) == 4000
    # A browser sends a textarea's line breaks as CRLF but counts each as one character towards maxlength.
    with_breaks = "abc\r\n" * 1000  # 5,000 characters sent, 4,000 as the person typed them
    search = search_request(
        face=face, requested_by=world.users["owner"], gallery_ids=[gallery.pk], justification=with_breaks
    )
    assert search.justification.startswith("abc\r\nabc")


def test_an_over_long_rationale_is_refused_on_the_api_and_the_page(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    rationale = text_of(4001, "END-OF-RATIONALE")
    response = client_for(world.users["owner"]).post(
        f"/api/candidates/{candidate.pk}/decisions/", {"decision": "not_a_match", "rationale": rationale}
    )
    assert response.status_code == 400
    assert "rationale" in response.json()["fields"]
    page = page_client(world.users["owner"]).post(
        f"/candidates/{candidate.pk}/decide/", {"decision": "not_a_match", "rationale": rationale}, follow=True
    )
    assert "the limit is 4,000" in page.content.decode()
    assert not Decision.objects.filter(candidate=candidate).exists()
    assert not audit_mentions(rationale)


def test_an_over_long_legal_basis_and_probe_description_are_refused(world: CaseWorld) -> None:
    client = client_for(world.users["owner"])
    response = client.post(
        "/api/cases/",
        {"reference": "OP-2", "title": "T", "purpose": "suspect", "legal_basis": "b" * 4001},
        format="json",
    )
    assert response.status_code == 400
    assert "legal_basis" in response.json()["fields"]
    page = page_client(world.users["owner"]).post(
        "/cases/new/", {"reference": "OP-3", "title": "T", "purpose": "suspect", "legal_basis": "b" * 4001}
    )
    assert page.status_code == 200  # the form again, with its error
    assert "4000" in page.content.decode() or "4,000" in page.content.decode()
    assert not world.case.__class__.objects.filter(reference__in=["OP-2", "OP-3"]).exists()


def report_text(pdf: bytes, tmp_path: Any) -> str:
    if shutil.which("pdftotext"):
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf)
        return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return pdf_text(pdf)


def test_the_report_lays_out_every_text_at_its_longest(world: CaseWorld, tmp_path: Any) -> None:
    owner, supervisor = world.users["owner"], world.users["supervisor"]
    case, search, candidate = world.case, world.extra["search"], world.extra["candidate"]
    probe = world.extra["probe"]
    case.legal_basis = text_of(TEXT_LIMITS["legal_basis"], "END-OF-LEGAL-BASIS")
    case.save()
    probe.description = text_of(TEXT_LIMITS["probe_description"], "END-OF-DESCRIPTION")
    probe.save()
    search.justification = text_of(TEXT_LIMITS["justification"], "END-OF-JUSTIFICATION")
    search.small_face_reason = text_of(TEXT_LIMITS["small_face_reason"], "END-OF-SMALL-FACE")
    search.save()
    candidate_decision_record(
        candidate=candidate,
        reviewer=owner,
        decision="possible_match",
        rationale=text_of(TEXT_LIMITS["rationale"], "END-OF-FIRST-RATIONALE"),
    )
    candidate_decision_record(
        candidate=candidate,
        reviewer=supervisor,
        decision="possible_match",
        rationale=text_of(TEXT_LIMITS["rationale"], "END-OF-SECOND-RATIONALE"),
    )
    pdf = search_report_pdf(search=search, generated_by=supervisor)
    text = report_text(pdf, tmp_path)
    for marker in (
        "END-OF-LEGAL-BASIS",
        "END-OF-DESCRIPTION",
        "END-OF-JUSTIFICATION",
        "END-OF-SMALL-FACE",
        "END-OF-FIRST-RATIONALE",
        "END-OF-SECOND-RATIONALE",
    ):
        assert marker in text, marker
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) >= 2  # it ran over pages rather than failing
    # And through the page, as a person downloads it.
    response = page_client(supervisor).get(f"/searches/{search.pk}/report.pdf")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")
