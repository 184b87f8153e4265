"""Issue 13, item 8: the API a token client needs besides the core flow (tests/test_api_judged_flow.py runs that).

The galleries one may search; a case's searches; one candidate; closing and reopening a case; the probe, face
crop and candidate images with token authentication (the same 404s and audit events as the pages); revoking and
rotating a token; Swagger UI and ReDoc served from rfr's own static files. Each endpoint with an owner, a member
and an outsider (or another user's token) where access matters; each in the OpenAPI schema.

Real PostgreSQL; workbench objects made directly (tests.factories.workbench_objects_create, no face engine).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_issue
from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.models import Probe, Search
from cases.review import candidate_decision_record
from search.galleries import subject_delete
from search.models import Subject
from tests.factories import CaseWorld, build_case_world, workbench_objects_create

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(settings: Any, tmp_path: Path) -> CaseWorld:
    settings.MEDIA_ROOT = tmp_path / "media"
    world = build_case_world()
    workbench_objects_create(world)
    return world


def _token(user: Any) -> tuple[APIClient, ApiToken]:
    key, token = api_token_issue(user=user, totp_verified=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, token


def _as(world: CaseWorld, role: str) -> APIClient:
    return _token(world.users[role])[0]


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _events(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


# --- Images ------------------------------------------------------------------------------------------------


def _image_endpoints(world: CaseWorld) -> list[tuple[str, str, str, str]]:
    """(url, content type, audit action, detail["shown"]) of each image a token client may fetch."""
    probe, face, candidate = world.extra["probe"], world.extra["face"], world.extra["candidate"]
    return [
        (f"/api/probes/{probe.pk}/image/", "image/png", "probe.image_viewed", "original"),
        (f"/api/probes/{probe.pk}/display/", "image/png", "probe.image_viewed", "display_copy"),
        (f"/api/faces/{face.pk}/crop/", "image/png", "probe.image_viewed", "face_crop"),
        (f"/api/candidates/{candidate.pk}/image/", "image/png", "candidate.image_viewed", "gallery_image"),
        (f"/api/candidates/{candidate.pk}/crop/", "image/png", "candidate.image_viewed", "aligned_crop"),
    ]


def test_token_clients_fetch_every_image_and_each_fetch_is_audited(world: CaseWorld) -> None:
    member = _as(world, "member")
    for url, content_type, action, shown in _image_endpoints(world):
        before = _events(action)
        # An image client says it wants an image; that must not become 406.
        response = member.get(url, HTTP_ACCEPT="image/*")
        assert response.status_code == 200, (url, response.status_code)
        assert response["Content-Type"] == content_type, url
        assert "private" in response["Cache-Control"] and "no-store" in response["Cache-Control"], url
        assert response["X-Content-Type-Options"] == "nosniff"
        assert _body(response).startswith(b"\x89PNG"), url
        assert _events(action) == before + 1, url
        event = AuditEvent.objects.filter(action=action).latest("seq")
        assert event.actor_id == world.users["member"].pk and event.case_id == world.case.pk
        assert event.detail["shown"] == shown and event.detail["via"] == "api"
    # The original is the stored bytes, unchanged.
    probe = world.extra["probe"]
    with probe.original.open("rb") as handle:
        assert _body(member.get(f"/api/probes/{probe.pk}/image/")) == handle.read()
    # A camera's MPO is the JPEG it is: "image/mpo" is no type a client knows.
    Probe.objects.filter(pk=probe.pk).update(image_format="MPO")
    assert member.get(f"/api/probes/{probe.pk}/image/")["Content-Type"] == "image/jpeg"
    assert audit_chain_verify().ok


def test_images_follow_the_pages_404_rules_and_refusals_write_nothing(world: CaseWorld) -> None:
    endpoints = _image_endpoints(world)
    for role in ("outsider", "other_sup", "admin"):
        client = _as(world, role)
        for url, _, _, _ in endpoints:
            response = client.get(url, HTTP_ACCEPT="image/*")
            assert response.status_code == 404, (role, url)
            assert response.json()["error"] == "not_found"  # the API's one error shape, not an image or a page
    for url, _, _, _ in endpoints:
        assert APIClient().get(url).status_code == 401  # no credentials: 401, never a redirect to sign in
    assert not AuditEvent.objects.filter(action__in=["probe.image_viewed", "candidate.image_viewed"]).exists()

    # A gallery entry removed on request: its images are gone for everyone, and nothing is recorded as seen.
    candidate = world.extra["candidate"]
    subject = Subject.objects.get(pk=candidate.subject_id)
    subject_delete(subject=subject, reason="deletion on request", actor=world.users["admin"])
    owner = _as(world, "owner")
    for url in (f"/api/candidates/{candidate.pk}/image/", f"/api/candidates/{candidate.pk}/crop/"):
        response = owner.get(url)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert not AuditEvent.objects.filter(action="candidate.image_viewed").exists()


# --- Galleries, a case's searches, one candidate ------------------------------------------------------------


def test_every_signed_in_user_lists_the_searchable_galleries_with_their_size(world: CaseWorld) -> None:
    gallery = world.extra["gallery"]
    for role in ("owner", "outsider", "admin"):
        body = _as(world, role).get("/api/galleries/").json()
        row = next(g for g in body["results"] if g["id"] == gallery.pk)
        assert row["name"] == gallery.name and row["kind"] == "custody"
        assert row["subjects"] == 1 and row["images"] == 1
        assert set(row) >= {"description", "provenance", "default_threshold", "default_threshold_pack_key"}
    assert APIClient().get("/api/galleries/").status_code == 401


def test_a_cases_searches_are_paged_newest_first_and_hidden_from_outsiders(world: CaseWorld) -> None:
    first = world.extra["search"]
    later = [
        Search.objects.create(
            case=world.case,
            face=world.extra["face"],
            requested_by=world.users["owner"],
            galleries=first.galleries,
            threshold=0.4,
            justification=f"Later search {n}",
            pack_key="test-pack@1",
        )
        for n in range(2)
    ]
    url = f"/api/cases/{world.case.pk}/searches/"
    owner = _as(world, "owner")
    page = owner.get(url, {"page_size": 2}).json()
    assert page["count"] == 3 and page["next"]
    assert [s["id"] for s in page["results"]] == [later[1].pk, later[0].pk]
    assert "candidates" not in page["results"][0]  # the list is no view of any candidate
    rest = owner.get(page["next"]).json()
    assert [s["id"] for s in rest["results"]] == [first.pk]
    assert not AuditEvent.objects.filter(action="search.candidates_viewed").exists()
    assert _as(world, "supervisor").get(url).json()["count"] == 3
    outsider = _as(world, "outsider").get(url)
    assert outsider.status_code == 404 and outsider.json()["error"] == "not_found"


def test_one_candidate_shows_decisions_as_the_reader_may_see_them_and_is_audited(world: CaseWorld) -> None:
    candidate = world.extra["candidate"]
    candidate_decision_record(
        candidate=candidate,
        reviewer=world.users["owner"],
        decision="possible_match",
        rationale="Same ear shape",
    )
    url = f"/api/candidates/{candidate.pk}/"

    mine = _as(world, "owner").get(url).json()
    assert [d["rationale"] for d in mine["decisions"]] == ["Same ear shape"]
    assert mine["decisions_withheld"] == 0 and mine["can_decide"] is False
    assert mine["awaiting_second_review"] is True and mine["released"] is False
    assert mine["images"]["gallery_image"] == f"/api/candidates/{candidate.pk}/image/"
    assert mine["probe"] == world.extra["probe"].pk and mine["search"] == world.extra["search"].pk

    # The second reviewer decides without the first assessment: withheld from him, and from the member.
    for role in ("supervisor", "member"):
        theirs = _as(world, role).get(url).json()
        assert theirs["decisions"] == [] and theirs["decisions_withheld"] == 1, role
        assert theirs["can_decide"] is True
    viewed = AuditEvent.objects.filter(action="candidate.viewed", target_id=str(candidate.pk))
    assert viewed.count() == 3
    assert {e.actor_id for e in viewed} == {world.users[r].pk for r in ("owner", "supervisor", "member")}
    assert {e.detail["via"] for e in viewed} == {"api"}

    for role in ("outsider", "other_sup", "admin"):
        assert _as(world, role).get(url).status_code == 404, role
    assert viewed.count() == 3  # a refused read is no view


# --- Closing and reopening -------------------------------------------------------------------------------


def test_closing_and_reopening_a_case_through_the_api(world: CaseWorld) -> None:
    case_id = world.case.pk
    close, reopen = f"/api/cases/{case_id}/close/", f"/api/cases/{case_id}/reopen/"
    owner, member, supervisor = (_as(world, role) for role in ("owner", "member", "supervisor"))

    refused = member.post(close, {"reason": "done"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "owner_or_supervisor_only"
    assert _as(world, "outsider").post(close, {"reason": "done"}, format="json").status_code == 404
    early = supervisor.post(reopen, {"reason": "more work"}, format="json")
    assert early.status_code == 409 and early.json()["error"] == "case_open"

    closed = owner.post(close, {"reason": "Enquiry complete"}, format="json")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = owner.post(close, {"reason": "x"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "case_closed"
    upload = owner.post(f"/api/cases/{case_id}/probes/", {"source": "cctv"})
    assert upload.status_code in (400, 409)  # no image; a closed case refuses uploads either way

    # Reopening: a supervisor of the case's team, with a reason.
    not_owner = owner.post(reopen, {"reason": "new evidence"}, format="json")
    assert not_owner.status_code == 403 and not_owner.json()["error"] == "supervisor_only"
    assert _as(world, "other_sup").post(reopen, {"reason": "x"}, format="json").status_code == 404
    no_reason = supervisor.post(reopen, {}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["error"] == "reason_required"
    assert "reason" in no_reason.json()["fields"]
    reopened = supervisor.post(reopen, {"reason": "New witness statement"}, format="json")
    assert reopened.status_code == 200, reopened.json()
    assert reopened.json()["status"] == "open" and reopened.json()["closed_at"] is None

    events = AuditEvent.objects.filter(case_id=case_id, action__in=["case.closed", "case.reopened"]).order_by("seq")
    assert [(e.action, e.actor_id, e.detail["reason"]) for e in events] == [
        ("case.closed", world.users["owner"].pk, "Enquiry complete"),
        ("case.reopened", world.users["supervisor"].pk, "New witness statement"),
    ]
    assert audit_chain_verify().ok


# --- Tokens ------------------------------------------------------------------------------------------------


def test_rotating_a_token_replaces_it_in_one_step_without_extending_its_life(world: CaseWorld) -> None:
    client, old = _token(world.users["owner"])
    rotated = client.post("/api/auth/token/rotate/")
    assert rotated.status_code == 200, rotated.json()
    new_key = rotated.json()["token"]
    old.refresh_from_db()
    assert old.revoked_at is not None and old.revoked_reason == "rotated"
    new = ApiToken.objects.get(user=world.users["owner"], revoked_at__isnull=True)
    assert new.prefix == new_key[:8] and new.expires_at == old.expires_at
    assert new_key not in new.key_hash

    # The old key is refused from now on; the new one works.
    assert client.get("/api/cases/").status_code == 401
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert fresh.get("/api/cases/").status_code == 200
    event = AuditEvent.objects.get(action="auth.token_rotated")
    assert event.actor_id == world.users["owner"].pk
    assert event.detail["revoked"] == old.prefix and event.detail["token"] == new.prefix
    assert new_key not in str(event.detail)

    # Rotation needs the token itself: a web session has none to rotate.
    browser = Client()
    browser.force_login(world.users["owner"])
    refused = browser.post("/api/auth/token/rotate/")
    assert refused.status_code == 400 and refused.json()["error"] == "token_required"
    assert audit_chain_verify().ok


def test_listing_and_revoking_ones_own_tokens_by_id(world: CaseWorld) -> None:
    owner, current = _token(world.users["owner"])
    _, other_of_mine = _token(world.users["owner"])
    _, not_mine = _token(world.users["member"])

    listed = owner.get("/api/auth/tokens/").json()
    assert {t["id"] for t in listed} == {current.pk, other_of_mine.pk}
    assert {t["id"]: t["current"] for t in listed} == {current.pk: True, other_of_mine.pk: False}
    assert all(t["state"] == "Valid" and len(t["prefix"]) == 8 for t in listed)
    assert all("key" not in t and "key_hash" not in t for t in listed)

    # Someone else's token cannot be revoked, nor learnt of.
    refused = owner.delete(f"/api/auth/tokens/{not_mine.pk}/")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    not_mine.refresh_from_db()
    assert not_mine.revoked_at is None

    assert owner.delete(f"/api/auth/tokens/{other_of_mine.pk}/").status_code == 204
    other_of_mine.refresh_from_db()
    assert other_of_mine.revoked_at is not None and other_of_mine.revoked_reason == "revoked_by_owner"
    revoked = AuditEvent.objects.get(action="auth.token_revoked")
    assert revoked.detail["tokens"] == [other_of_mine.prefix]
    assert owner.delete(f"/api/auth/tokens/{other_of_mine.pk}/").status_code == 204  # already revoked: no change
    assert _events("auth.token_revoked") == 1

    anonymous = APIClient()
    assert anonymous.get("/api/auth/tokens/").status_code == 401
    assert anonymous.delete(f"/api/auth/tokens/{current.pk}/").status_code == 401
    assert anonymous.post("/api/auth/token/rotate/").status_code == 401

    # And the token one is using: after this, it is refused.
    assert owner.delete("/api/auth/token/").status_code == 204
    assert owner.get("/api/auth/tokens/").status_code == 401
    assert audit_chain_verify().ok


# --- Documentation pages, offline ----------------------------------------------------------------------------

_LOADED = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]+)"', re.IGNORECASE)


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_nothing_from_outside_the_server(world: CaseWorld, url: str, settings: Any) -> None:
    assert Client().get(url).status_code == 302  # signed-in people only
    browser = Client()
    browser.force_login(world.users["owner"])
    page = browser.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "a page element loads from another host"
    assert "googleapis" not in html and "cdn" not in html.lower()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script would need 'unsafe-inline'"
    loaded = _LOADED.findall(html)
    statics = [src for src in loaded if src.startswith("/static/")]
    assert statics, loaded
    for src in statics:  # every file the page loads is one this server holds
        assert finders.find(src.removeprefix("/static/").split("?")[0]), src
    if url == "/api/docs/":
        script = browser.get("/api/docs/?script")
        assert script.status_code == 200
        code = script.content.decode()
        assert not re.search(r"https?://", code), "the start-up script names another host"
        assert "/api/schema/" in code
        assert '"validatorUrl": null' in code  # no badge from validator.swagger.io
        assert "worker-src" not in page["Content-Security-Policy"]
    else:
        assert 'spec-url="/api/schema/"' in html
        assert any("redoc" in src for src in statics)
        # ReDoc's search runs in a worker made from a blob: URL; this one page allows that, nothing else more.
        policy = page["Content-Security-Policy"]
        assert policy.startswith(settings.RFR_CONTENT_SECURITY_POLICY.rstrip("; "))
        assert policy.endswith("; worker-src 'self' blob:")


# --- The schema ------------------------------------------------------------------------------------------

NEW_OPERATIONS = {
    ("/api/galleries/", "get"),
    ("/api/cases/{case_id}/searches/", "get"),
    ("/api/candidates/{candidate_id}/", "get"),
    ("/api/cases/{case_id}/close/", "post"),
    ("/api/cases/{case_id}/reopen/", "post"),
    ("/api/probes/{probe_id}/image/", "get"),
    ("/api/probes/{probe_id}/display/", "get"),
    ("/api/faces/{face_id}/crop/", "get"),
    ("/api/candidates/{candidate_id}/image/", "get"),
    ("/api/candidates/{candidate_id}/crop/", "get"),
    ("/api/auth/token/", "delete"),
    ("/api/auth/token/rotate/", "post"),
    ("/api/auth/tokens/", "get"),
    ("/api/auth/tokens/{token_id}/", "delete"),
}


def test_the_schema_documents_every_new_endpoint_with_the_one_error_shape(world: CaseWorld) -> None:
    schema = yaml.safe_load(_as(world, "owner").get("/api/schema/").content)
    offered = {(path, method) for path, operations in schema["paths"].items() for method in operations}
    assert not NEW_OPERATIONS - offered, sorted(NEW_OPERATIONS - offered)
    for path, method in NEW_OPERATIONS:
        responses = schema["paths"][path][method]["responses"]
        assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        if "{" in path:
            assert "404" in responses, (path, method)
    images = [p for p, _ in NEW_OPERATIONS if p.endswith(("/image/", "/display/", "/crop/"))]
    for path in images:
        content = schema["paths"][path]["get"]["responses"]["200"]["content"]
        (media_type,) = content
        assert media_type.startswith("image/") and content[media_type]["schema"]["format"] == "binary", path
    reopen = schema["paths"]["/api/cases/{case_id}/reopen/"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["components"]["schemas"][reopen["schema"]["$ref"].rsplit("/", 1)[1]]["required"] == ["reason"]
    candidate = schema["components"]["schemas"]["CandidateDetail"]["properties"]
    assert {"decisions", "decisions_withheld", "images", "can_decide"} <= set(candidate)
