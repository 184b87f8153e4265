"""Issue 13, "Judged by": through the API alone, with a token: list galleries, upload, search, read candidates,
fetch both images, decide, close the case.

Everything here goes through HTTP with `Authorization: Token <key>` only: the keys are obtained with a password
from POST /api/auth/token/, no client ever signs in on the web, and no session cookie is ever set. Real faces
(the shared CelebA subset: the `gallery` fixture enrols six people, and a photo of one of them kept out of the
gallery is the probe), the real face engine and real PostgreSQL; tasks run in-process on commit, as a worker would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.models import POSSIBLE_MATCH_WORDING, Case
from tests.factories import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _token_client(username: str) -> APIClient:
    """A client holding nothing but a token obtained with the user's password."""
    obtained = APIClient().post("/api/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert obtained.status_code == 200, obtained.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {obtained.json()['token']}")
    return client


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _fetch_image(client: APIClient, url: str, content_type: str) -> np.ndarray:
    response = client.get(url, HTTP_ACCEPT="image/*")
    assert response.status_code == 200, (url, response.status_code)
    assert response["Content-Type"] == content_type, url
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], url
    image = cv2.imdecode(np.frombuffer(_body(response), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.size, url
    return image


def test_the_judged_flow_through_the_api_alone_with_tokens(
    people: dict[str, Any],
    gallery: tuple[Any, dict[str, list[Path]]],
    run_on_commit: Callable[..., Any],
) -> None:
    custody, identities = gallery
    identity, paths = next(iter(identities.items()))
    probe_path = paths[2]  # a photo of an enrolled person that is not itself in the gallery
    ivy = _token_client("ivy")  # investigator, member of the team "Major crime"
    sam = _token_client("sam")  # the team's supervisor: the second reviewer

    # 1. The galleries ivy may search.
    galleries = ivy.get("/api/galleries/").json()
    listed = {g["name"]: g for g in galleries["results"]}
    assert listed["Custody test"]["id"] == custody.pk
    assert listed["Custody test"]["subjects"] == 6 and listed["Custody test"]["images"] == 12

    # 2. A case, opened by ivy (her one team, so its supervisor oversees it).
    created = ivy.post(
        "/api/cases/",
        {"reference": "OP-JUDGED/1", "title": "Bus stop assault", "purpose": "suspect", "legal_basis": "PACE"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    case_id = created.json()["id"]

    # 3. Upload the probe; processing runs as the upload commits.
    uploaded = run_on_commit(
        lambda: ivy.post(
            f"/api/cases/{case_id}/probes/",
            {
                "image": SimpleUploadedFile(probe_path.name, probe_path.read_bytes()),
                "source": "cctv",
                "description": "Camera 2",
                "lawfully_held": "true",
            },
            format="multipart",
        )
    )
    assert uploaded.status_code == 201, uploaded.json()
    probe = ivy.get(f"/api/probes/{uploaded.json()['id']}/").json()
    assert probe["status"] == "done" and probe["faces"], probe
    face_id = probe["faces"][0]["id"]  # most usable first
    assert probe["image_url"] == f"/api/probes/{probe['id']}/image/"  # addresses a token client can fetch
    assert probe["faces"][0]["crop_url"] == f"/api/faces/{face_id}/crop/"

    # 4. Search the gallery with that face.
    requested = run_on_commit(
        lambda: ivy.post(
            f"/api/faces/{face_id}/searches/",
            {"galleries": [custody.pk], "justification": "Suspect for the assault at the bus stop"},
            format="json",
        )
    )
    assert requested.status_code == 201, requested.json()
    search_id = requested.json()["id"]
    history = ivy.get(f"/api/cases/{case_id}/searches/").json()
    assert history["count"] == 1 and history["results"][0]["id"] == search_id
    assert history["results"][0]["status"] == "done"

    # 5. Read the candidates, then the one of the person searched for.
    search = ivy.get(f"/api/searches/{search_id}/").json()
    assert search["status"] == "done" and search["wording"] == POSSIBLE_MATCH_WORDING
    by_ref = {c["subject_ref"]: c for c in search["candidates"]}
    assert f"CUST-{identity}" in by_ref, sorted(by_ref)
    candidate_id = by_ref[f"CUST-{identity}"]["id"]
    candidate = ivy.get(f"/api/candidates/{candidate_id}/").json()
    assert candidate["search"] == search_id and candidate["case"] == case_id and candidate["face"] == face_id
    assert candidate["can_decide"] is True and candidate["decisions"] == []

    # 6. Both faces: the probe's original and aligned crop, the candidate's gallery image and aligned crop.
    images = candidate["images"]
    original = _fetch_image(ivy, images["probe_image"], "image/jpeg")
    assert original.shape[:2] == (probe["height"], probe["width"])
    assert _fetch_image(ivy, images["probe_face_crop"], "image/png").shape == (112, 112, 3)
    assert _fetch_image(ivy, images["gallery_image"], "image/jpeg").size
    assert _fetch_image(ivy, images["gallery_face_crop"], "image/png").shape == (112, 112, 3)

    # 7. Decide: ivy's possible match, then sam's independent agreement (ivy's is withheld from him until then).
    decisions = f"/api/candidates/{candidate_id}/decisions/"
    first = ivy.post(decisions, {"decision": "possible_match", "rationale": "Scar over the eyebrow"}, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["released"] is False
    as_sam = sam.get(f"/api/candidates/{candidate_id}/").json()
    assert as_sam["decisions"] == [] and as_sam["decisions_withheld"] == 1
    assert as_sam["awaiting_second_review"] is True and as_sam["can_decide"] is True
    second = sam.post(decisions, {"decision": "possible_match", "rationale": "Agree: brow, nose, jaw"}, format="json")
    assert second.status_code == 201, second.json()
    assert second.json()["released"] is True
    assert second.json()["label"].startswith(POSSIBLE_MATCH_WORDING)

    # 8. Close the case: it takes no new work afterwards.
    closed = ivy.post(f"/api/cases/{case_id}/close/", {"reason": "Suspect charged"}, format="json")
    assert closed.status_code == 200, closed.json()
    assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
    refused = ivy.post(f"/api/faces/{face_id}/searches/", {"galleries": [custody.pk], "justification": "x"})
    assert refused.status_code == 409 and refused.json()["error"] == "case_closed"

    # No client ever held a session: every request above was made with its token alone.
    for client in (ivy, sam):
        assert "sessionid" not in client.cookies
    # Each step is on the record, in one intact chain.
    case = Case.objects.get(pk=case_id)
    actions = list(AuditEvent.objects.filter(case_id=case.pk).values_list("action", flat=True))
    for action in (
        "case.created",
        "probe.uploaded",
        "search.requested",
        "search.candidates_viewed",
        "candidate.viewed",
        "candidate.decided",
        "case.closed",
    ):
        assert action in actions, action
    assert actions.count("probe.image_viewed") == 2 and actions.count("candidate.image_viewed") == 2
    assert AuditEvent.objects.get(action="case.closed", case_id=case.pk).detail == {"reason": "Suspect charged"}
    assert audit_chain_verify().ok
