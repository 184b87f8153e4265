"""Faces made from five landmarks placed by hand (issue 10 item 2): on real images with the real engine.

A face marked from the detector's own landmarks must give (nearly) the detected face's template, and one
marked a couple of pixels off must stay close; bad points are refused with a reason; the face reads "manually
marked" on the pages, in the API and in the PDF report, and the marking is audited with the points and who.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client

from audit.models import AuditEvent
from cases.models import Case, Probe, ProbeFace, Search
from cases.reports import search_report_pdf
from tests.factories import client_for, upload
from tests.test_workbench_pages import pdf_text

pytestmark = pytest.mark.django_db

# A fixed, hand-made error of up to 2 px on each point (not random, so the test reads the same every run).
NUDGE = np.array([[2.0, -1.5], [-2.0, 1.0], [1.5, 2.0], [-1.0, -2.0], [2.0, 1.5]])


def _template(face: ProbeFace) -> np.ndarray:
    return np.frombuffer(bytes(face.template), "<f4")


@pytest.fixture
def hanks_probe(
    case: Case, people: dict[str, Any], insightface_images: Path, run_on_commit: Callable[..., Any]
) -> tuple[Probe, ProbeFace]:
    data = (insightface_images / "Tom_Hanks_54745.png").read_bytes()
    response = run_on_commit(lambda: upload(client_for(people["investigator"]), case, data, "hanks.png"))
    assert response.status_code == 201, response.json()
    probe = Probe.objects.get(pk=response.json()["id"])
    detected = probe.faces.get()
    assert detected.origin == ProbeFace.Origin.DETECTED
    return probe, detected


def test_landmarks_marked_by_hand_give_the_detected_face_template_and_are_marked_and_audited(
    hanks_probe: tuple[Probe, ProbeFace], people: dict[str, Any]
) -> None:
    probe, detected = hanks_probe
    client = client_for(people["investigator"])
    true_points = np.array(detected.landmarks, dtype=float)

    response = client.post(f"/api/probes/{probe.pk}/landmarks/", {"points": true_points.tolist()}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["origin"] == "manual" and body["manually_marked"] is True
    assert body["marked_by"] == people["investigator"].get_username()
    assert "manually marked" in body["origin_text"]
    assert "manual_landmarks" in body["warnings"] and "low_detector_score" not in body["warnings"]
    assert any("alignment depends on where a person placed the points" in t for t in body["warning_text"])
    assert body["landmarks"] == [[round(x, 2), round(y, 2)] for x, y in true_points.tolist()]
    manual = ProbeFace.objects.get(pk=body["id"])
    assert float(_template(manual) @ _template(detected)) >= 0.9

    nudged = client.post(
        f"/api/probes/{probe.pk}/landmarks/",
        {"points": (true_points + NUDGE).tolist(), "drawn_box": detected.box},
        format="json",
    )
    assert nudged.status_code == 201, nudged.json()
    nudged_face = ProbeFace.objects.get(pk=nudged.json()["id"])
    assert float(_template(nudged_face) @ _template(detected)) >= 0.9
    assert nudged_face.drawn_box == [round(v, 1) for v in detected.box]
    assert [f.index for f in probe.faces.order_by("index")] == [1, 2, 3]

    event = AuditEvent.objects.filter(action="probe.face_marked", case_id=probe.case_id).order_by("pk").last()
    assert event is not None and event.actor_id == people["investigator"].pk
    assert event.detail["points"] == nudged_face.landmarks
    assert event.detail["marked_by"] == people["investigator"].get_username()
    assert event.detail["drawn_box"] == nudged_face.drawn_box

    # Outsiders learn nothing and change nothing.
    outsider = client_for(people["outsider"])
    refused = outsider.post(f"/api/probes/{probe.pk}/landmarks/", {"points": true_points.tolist()}, format="json")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert probe.faces.count() == 3

    # The search API, the search page and the PDF report say so too.
    search = Search.objects.create(
        case=probe.case,
        face=manual,
        requested_by=people["investigator"],
        galleries=[],
        threshold=0.3,
        threshold_source=Search.ThresholdSource.SETTING,
        justification="Robbery suspect",
        pack_key=manual.pack_key,
        status=Search.Status.DONE,
        progress=100,
    )
    api_search = client.get(f"/api/searches/{search.pk}/").json()
    assert api_search["face_manually_marked"] is True and "placed by hand" in api_search["face_origin_text"]
    page = Client()
    page.force_login(people["investigator"])
    assert "manually marked" in page.get(f"/searches/{search.pk}/").content.decode()
    text = pdf_text(search_report_pdf(search=search, generated_by=people["investigator"]))
    assert "Manually marked face" in text and "manual_landmarks" in text


BAD_POINTS: list[tuple[Callable[[list[list[Any]]], list[Any]], str]] = [
    (lambda p: p[:4], "exactly five points"),
    (lambda p: [[p[0][0], "left"], *p[1:]], "pairs of numbers"),
    (lambda p: [[-5.0, p[0][1]], *p[1:]], "outside the image"),
    (lambda p: [p[1], p[0], *p[2:]], "eye on the image's left"),
    (lambda p: [p[0], p[1], [p[2][0], p[0][1] - 10], p[3], p[4]], "nose tip must lie below the eyes"),
    (lambda p: [p[0], p[1], [p[0][0] - 15, p[2][1]], p[3], p[4]], "between the two eyes"),
    (lambda p: [p[0], p[1], p[2], [p[3][0], p[2][1] - 3], p[4]], "mouth corners must lie below the nose"),
    (lambda p: [p[0], p[1], p[2], p[4], p[3]], "left mouth corner"),
    (lambda p: [p[0], [p[0][0] + 2, p[0][1]], *p[2:]], "at least 4 pixels apart"),
]


def test_implausible_points_are_refused_with_a_reason(
    hanks_probe: tuple[Probe, ProbeFace], people: dict[str, Any]
) -> None:
    probe, detected = hanks_probe
    client = client_for(people["investigator"])
    for change, words in BAD_POINTS:
        points = change([list(map(float, p)) for p in detected.landmarks])
        response = client.post(f"/api/probes/{probe.pk}/landmarks/", {"points": points}, format="json")
        assert response.status_code == 400, (words, response.json())
        assert response.json()["error"] == "invalid_landmarks", words
        assert words in response.json()["message"], response.json()["message"]
        assert response.json()["fields"]["points"] == [response.json()["message"]]
    assert probe.faces.count() == 1
    assert not AuditEvent.objects.filter(action="probe.face_marked").exists()


def test_marking_by_hand_in_the_pages_after_a_drawn_box_finds_nothing(
    hanks_probe: tuple[Probe, ProbeFace], people: dict[str, Any]
) -> None:
    probe, detected = hanks_probe
    page = Client()
    page.force_login(people["investigator"])
    # A box on the plain background beside the face: nothing found there, so the page offers marking by hand.
    drawn = page.post(f"/probes/{probe.pk}/draw/", {"x": 0, "y": 0, "w": 12, "h": 12})
    assert drawn.status_code == 302 and f"/probes/{probe.pk}/mark/?box=" in drawn["Location"]
    whole = page.get(f"/probes/{probe.pk}/mark/")
    assert whole.status_code == 200 and f"/probes/{probe.pk}/image" in whole.content.decode()
    box = ",".join(str(round(v)) for v in detected.box)
    form = page.get(f"/probes/{probe.pk}/mark/", {"box": box})
    assert form.status_code == 200
    html = form.content.decode()
    assert 'name="p5y"' in html and "region.png?box=" in html
    region = page.get(f"/probes/{probe.pk}/mark/region.png", {"box": box})
    assert region.status_code == 200 and region["Content-Type"] == "image/png"

    fields = {}
    for i, (x, y) in enumerate(detected.landmarks, start=1):
        fields.update({f"p{i}x": str(x), f"p{i}y": str(y)})
    preview_page = page.post(f"/probes/{probe.pk}/mark/", {"box": box, "preview": "1", **fields})
    assert preview_page.status_code == 200 and "mark/preview.png?" in preview_page.content.decode()
    assert not probe.faces.filter(origin=ProbeFace.Origin.MANUAL).exists()  # a preview stores nothing
    preview = page.get(f"/probes/{probe.pk}/mark/preview.png", fields)
    assert preview.status_code == 200 and preview["Content-Type"] == "image/png"
    shown = AuditEvent.objects.filter(action="probe.image_viewed", case_id=probe.case_id)
    assert {"region", "landmark_preview"} <= {e.detail["shown"] for e in shown}
    bad = page.get(f"/probes/{probe.pk}/mark/preview.png", {**fields, "p3y": "0"})
    assert bad.status_code == 400 and "nose tip" in bad.content.decode()

    saved = page.post(f"/probes/{probe.pk}/mark/", {"box": box, **fields})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    face = probe.faces.get(origin=ProbeFace.Origin.MANUAL)
    assert face.drawn_by_id == people["investigator"].pk
    probe_page = page.get(f"/probes/{probe.pk}/").content.decode()
    assert "manually marked" in probe_page and "placed by hand by" in probe_page

    # A supervisor may look at the probe but not mark faces; an outsider does not learn it exists.
    supervisor = Client()
    supervisor.force_login(people["supervisor"])
    assert supervisor.post(f"/probes/{probe.pk}/mark/", fields).status_code == 403
    outsider = Client()
    outsider.force_login(people["outsider"])
    assert outsider.get(f"/probes/{probe.pk}/mark/").status_code == 404
    assert outsider.get(f"/probes/{probe.pk}/mark/preview.png", fields).status_code == 404
    assert probe.faces.filter(origin=ProbeFace.Origin.MANUAL).count() == 1
