"""The workbench pages through Django's test client: upload, faces, search, review, second review, report."""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.models import Candidate, Case, Probe, ProbeFace, Search

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pdf_text(data: bytes) -> str:
    """The text drawn in a PDF made by reportlab: inflate every content stream and join its strings."""
    chunks = []
    for match in re.finditer(rb"stream\r?\n(.*?)\s*endstream", data, re.S):
        raw = match.group(1)
        if raw.rstrip().endswith(b"~>"):  # reportlab's default filter chain: ASCII85, then Flate
            raw = base64.a85decode(raw.rstrip()[:-2].replace(b"\n", b"").replace(b"\r", b""))
        try:
            chunks.append(zlib.decompress(raw))
        except zlib.error:
            chunks.append(raw)
    strings = re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", b"\n".join(chunks))
    return " ".join(s.decode("latin-1") for s in strings)


def test_upload_search_review_and_report_in_the_browser_pages(
    case: Case,
    people: dict[str, Any],
    gallery: tuple[Any, dict[str, list[Path]]],
    run_on_commit: Any,
) -> None:
    gallery_obj, identities = gallery
    identity, paths = next(iter(identities.items()))
    investigator = login(people["investigator"])

    page = investigator.get(f"/cases/{case.pk}/workbench/")
    assert page.status_code == 200
    assert b"lawfully held" in page.content and b'name="images"' in page.content

    response = run_on_commit(
        lambda: investigator.post(
            f"/cases/{case.pk}/workbench/upload/",
            {
                "images": [SimpleUploadedFile(paths[2].name, paths[2].read_bytes())],
                "source": "cctv",
                "description": "Camera 3",
                "captured_at": "2026-10-01T21:14",
                "lawfully_held": "on",
            },
        )
    )
    probe = Probe.objects.get(case=case)
    assert response.status_code == 302 and response["Location"] == f"/probes/{probe.pk}/"
    assert probe.captured_at is not None and probe.status == Probe.Status.DONE

    page = investigator.get(f"/probes/{probe.pk}/")
    content = page.content.decode()
    assert "Faces found" in content and "<rect" in content and "Search with face" in content
    status = investigator.get(f"/probes/{probe.pk}/status.json").json()
    assert status["status"] == "done" and status["faces"] >= 1
    assert investigator.get(f"/probes/{probe.pk}/image").status_code == 200

    face = max(ProbeFace.objects.filter(probe=probe), key=lambda f: f.box[2] * f.box[3])
    crop = investigator.get(f"/faces/{face.pk}/crop.png")
    assert crop.status_code == 200 and crop["Content-Type"] == "image/png"
    form = investigator.get(f"/faces/{face.pk}/search/")
    assert form.status_code == 200 and f'value="{gallery_obj.pk}"'.encode() in form.content
    refused = investigator.post(f"/faces/{face.pk}/search/", {"galleries": [gallery_obj.pk], "justification": ""})
    assert refused.status_code == 400 and b"necessary and proportionate" in refused.content
    assert not Search.objects.exists()

    response = run_on_commit(
        lambda: investigator.post(
            f"/faces/{face.pk}/search/",
            {
                "galleries": [gallery_obj.pk],
                "top_k": "10",
                "threshold": "",
                "justification": "Robbery, camera 3",
            },
        )
    )
    search = Search.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/searches/{search.pk}/"
    page = investigator.get(f"/searches/{search.pk}/")
    assert f"CUST-{identity}".encode() in page.content
    assert "possible match — intelligence only, not an identification" in page.content.decode()
    assert AuditEvent.objects.filter(action="search.candidates_viewed", target_id=str(search.pk)).exists()
    assert investigator.get(f"/searches/{search.pk}/status.json").json()["status"] == "done"

    candidate = Candidate.objects.get(search=search, subject_ref=f"CUST-{identity}")
    page = investigator.get(f"/candidates/{candidate.pk}/")
    assert page.status_code == 200 and b"Record decision" in page.content
    assert investigator.get(f"/candidates/{candidate.pk}/image").status_code == 200
    assert investigator.get(f"/candidates/{candidate.pk}/crop.png")["Content-Type"] == "image/png"
    assert AuditEvent.objects.filter(action="candidate.viewed", target_id=str(candidate.pk)).exists()

    investigator.post(f"/candidates/{candidate.pk}/decide/", {"decision": "possible_match", "rationale": "Same scar"})
    candidate.refresh_from_db()
    assert candidate.outcome == Candidate.Outcome.POSSIBLE_MATCH and not candidate.released
    again = investigator.post(
        f"/candidates/{candidate.pk}/decide/",
        {"decision": "possible_match", "rationale": "Sure"},
        follow=True,
    )
    assert b"already recorded a decision" in again.content

    supervisor = login(people["supervisor"])
    page = supervisor.get(f"/candidates/{candidate.pk}/")
    assert b"independent second review" in page.content
    supervisor.post(f"/candidates/{candidate.pk}/decide/", {"decision": "possible_match", "rationale": "Agree"})
    candidate.refresh_from_db()
    assert candidate.released

    report = investigator.get(f"/searches/{search.pk}/report.pdf")
    assert report.status_code == 200 and report["Content-Type"] == "application/pdf"
    assert report.content.startswith(b"%PDF")
    text = pdf_text(report.content)
    assert "intelligence only, not an identification" in text
    assert f"CUST-{identity}" in text and "Same scar" in text and "Agree" in text
    assert "Robbery, camera 3" in text
    assert AuditEvent.objects.filter(action="search.report_downloaded", target_id=str(search.pk)).exists()
    assert audit_chain_verify().ok

    outsider = login(people["outsider"])
    for url in [
        f"/cases/{case.pk}/workbench/",
        f"/probes/{probe.pk}/",
        f"/probes/{probe.pk}/status.json",
        f"/probes/{probe.pk}/image",
        f"/faces/{face.pk}/crop.png",
        f"/faces/{face.pk}/search/",
        f"/searches/{search.pk}/",
        f"/searches/{search.pk}/status.json",
        f"/searches/{search.pk}/report.pdf",
        f"/candidates/{candidate.pk}/",
        f"/candidates/{candidate.pk}/image",
        f"/candidates/{candidate.pk}/crop.png",
    ]:
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(f"/candidates/{candidate.pk}/decide/", {"decision": "x"}).status_code == 404
    assert Client().get(f"/probes/{probe.pk}/").status_code == 302  # anonymous: to the login page


def test_one_bad_file_in_a_batch_loses_nothing_else(
    case: Case, people: dict[str, Any], insightface_images: Path, run_on_commit: Any
) -> None:
    investigator = login(people["investigator"])
    response = run_on_commit(
        lambda: investigator.post(
            f"/cases/{case.pk}/workbench/upload/",
            {
                "images": [
                    SimpleUploadedFile("t1.jpg", (insightface_images / "t1.jpg").read_bytes()),
                    SimpleUploadedFile("notes.txt", b"just some text"),
                    SimpleUploadedFile("hanks.png", (insightface_images / "Tom_Hanks_54745.png").read_bytes()),
                ],
                "source": "social_media",
                "lawfully_held": "on",
            },
            follow=True,
        )
    )
    assert sorted(Probe.objects.values_list("original_name", flat=True)) == ["hanks.png", "t1.jpg"]
    content = response.content.decode()
    assert "notes.txt: This file is not an image rfr can read" in content
    assert "2 images uploaded" in content


def test_upload_without_the_lawful_statement_is_refused(
    case: Case, people: dict[str, Any], insightface_images: Path
) -> None:
    investigator = login(people["investigator"])
    response = investigator.post(
        f"/cases/{case.pk}/workbench/upload/",
        {
            "images": [SimpleUploadedFile("t1.jpg", (insightface_images / "t1.jpg").read_bytes())],
            "source": "cctv",
        },
        follow=True,
    )
    assert "Confirm that the image is lawfully held" in response.content.decode()
    assert not Probe.objects.exists()
