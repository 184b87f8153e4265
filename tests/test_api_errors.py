"""Every API refusal has one shape: {"error": CODE, "message": TEXT[, "fields": {FIELD: [TEXT...]}]}.

One request for each kind of refusal the API can give, through the real URL routing, authentication, parsers
and services; and the OpenAPI schema documents that shape on every operation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from cases import api as cases_api
from tests.factories import CaseWorld, build_case_world, client_for, upload, workbench_objects_create

pytestmark = pytest.mark.django_db


def assert_error(response: Any, status: int, code: str, *, fields: bool = False) -> dict[str, Any]:
    """The response is the one error shape with this status and code, and nothing else."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == ({"error", "message", "fields"} if fields else {"error", "message"}), body
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"].strip()
    assert not body["message"].startswith("detail"), body["message"]
    if fields:
        assert body["fields"] and all(isinstance(texts, list) and texts for texts in body["fields"].values())
    return body


@pytest.fixture
def world() -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


def test_unknown_api_routes_answer_json_404_whatever_the_method() -> None:
    client = APIClient()
    for method in ("get", "post", "delete"):
        assert_error(getattr(client, method)("/api/no-such-thing/"), 404, "not_found")
    assert_error(client.get("/api/cases/1/nothing-here/"), 404, "not_found")


def test_missing_or_bad_credentials_are_401_with_a_token_challenge() -> None:
    response = APIClient().get("/api/cases/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    bad = APIClient(HTTP_AUTHORIZATION="Token not-a-real-token").get("/api/cases/")
    assert_error(bad, 401, "authentication_failed")


def test_a_method_the_endpoint_does_not_offer_is_405(world: CaseWorld) -> None:
    response = client_for(world.users["owner"]).delete("/api/cases/")
    body = assert_error(response, 405, "method_not_allowed")
    assert "DELETE" in body["message"]
    assert "GET" in response["Allow"]


def test_an_outsider_gets_404_for_objects_under_a_case(world: CaseWorld) -> None:
    outsider = client_for(world.users["outsider"])
    for url in (
        f"/api/cases/{world.case.pk}/",
        f"/api/probes/{world.extra['probe'].pk}/",
        f"/api/searches/{world.extra['search'].pk}/",
    ):
        assert_error(outsider.get(url), 404, "not_found")
    decide = outsider.post(
        f"/api/candidates/{world.extra['candidate'].pk}/decisions/", {"decision": "not_a_match", "rationale": "x"}
    )
    assert_error(decide, 404, "not_found")


def test_a_supervisor_who_may_view_but_not_upload_gets_403(world: CaseWorld) -> None:
    response = client_for(world.users["supervisor"]).post(f"/api/cases/{world.case.pk}/probes/", {})
    assert_error(response, 403, "permission_denied")


def test_an_invalid_body_names_each_field(world: CaseWorld) -> None:
    owner = client_for(world.users["owner"])
    body = assert_error(owner.post("/api/cases/", {}, format="json"), 400, "invalid", fields=True)
    assert {"reference", "title", "purpose", "legal_basis"} <= set(body["fields"])
    assert "reference" in body["message"]  # the message alone says what to fix
    wrong = owner.post("/api/cases/", {"reference": "R", "title": "T", "purpose": "curiosity", "legal_basis": "x"})
    assert set(assert_error(wrong, 400, "invalid", fields=True)["fields"]) == {"purpose"}


def test_malformed_json_and_an_unsupported_body_type(world: CaseWorld) -> None:
    owner = client_for(world.users["owner"])
    broken = owner.generic("POST", "/api/cases/", "{not json", content_type="application/json")
    assert_error(broken, 400, "parse_error")
    text = owner.generic("POST", "/api/cases/", "reference=R", content_type="text/plain")
    assert_error(text, 415, "unsupported_media_type")


def test_a_second_decision_by_the_same_person_is_409(world: CaseWorld) -> None:
    owner = client_for(world.users["owner"])
    url = f"/api/candidates/{world.extra['candidate'].pk}/decisions/"
    first = owner.post(url, {"decision": "possible_match", "rationale": "Same ear shape"}, format="json")
    assert first.status_code == 201
    again = owner.post(url, {"decision": "possible_match", "rationale": "Still sure"}, format="json")
    assert_error(again, 409, "already_decided")


def test_a_missing_justification_is_refused_with_the_service_s_words(world: CaseWorld) -> None:
    owner = client_for(world.users["owner"])
    face = world.extra["face"]
    response = owner.post(f"/api/faces/{face.pk}/searches/", {"galleries": [world.extra["gallery"].pk]}, format="json")
    assert "necessary and proportionate" in assert_error(response, 400, "justification_required")["message"]


def test_an_oversize_upload_is_413_and_stores_nothing(
    world: CaseWorld, settings: Any, insightface_images: Path
) -> None:
    data = (insightface_images / "t1.jpg").read_bytes()
    settings.RFR_MAX_UPLOAD_BYTES = len(data) - 1
    response = upload(client_for(world.users["owner"]), world.case, data, "big.jpg")
    assert_error(response, 413, "file_too_large")
    assert world.case.probes.count() == 1  # only the one workbench_objects_create made


def test_throttling_answers_429_in_the_same_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"token": "2/minute"})
    cache.clear()
    client = APIClient()
    for _ in range(2):
        assert client.post("/api/auth/token/", {"username": "nobody", "password": "wrong"}).status_code == 400
    response = client.post("/api/auth/token/", {"username": "nobody", "password": "wrong"})
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    cache.clear()


def test_an_unexpected_fault_is_a_json_500(world: CaseWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("simulated fault")  # stands in for a bug; the handler must not leak it

    monkeypatch.setattr(cases_api, "cases_visible_to", broken)
    body = assert_error(client_for(world.users["owner"]).get("/api/cases/"), 500, "server_error")
    assert "simulated" not in body["message"]


def test_the_schema_documents_the_error_shape_and_required_fields(world: CaseWorld) -> None:
    schema = yaml.safe_load(client_for(world.users["owner"]).get("/api/schema/").content)
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"} and "fields" in error["properties"]
    error_ref = "#/components/schemas/Error"
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/") or path.startswith("/api/schema"):
            continue
        for method, operation in operations.items():
            for status in ("401", "403", "405", "500") + (("400",) if method == "post" else ()):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"]["$ref"] == error_ref, (path, method, status)
    create_search = schema["paths"]["/api/faces/{face_id}/searches/"]["post"]
    assert create_search["responses"]["404"]["content"]["application/json"]["schema"]["$ref"] == error_ref
    components = schema["components"]["schemas"]
    assert "justification" in components["SearchCreate"]["required"]
    assert "rationale" in components["DecisionCreate"]["required"]
    token = schema["paths"]["/api/auth/token/"]["post"]["responses"]["200"]["content"]["application/json"]
    assert components[token["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"]["token"]["type"] == "string"
