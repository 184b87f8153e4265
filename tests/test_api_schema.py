"""The OpenAPI schema documents every endpoint the issue names."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

REQUIRED = {
    ("/api/cases/", "post"),
    ("/api/cases/{case_id}/probes/", "post"),
    ("/api/probes/{probe_id}/", "get"),
    ("/api/faces/{face_id}/searches/", "post"),
    ("/api/searches/{search_id}/", "get"),
    ("/api/candidates/{candidate_id}/decisions/", "post"),
    ("/api/cases/{case_id}/audit/", "get"),
}


@pytest.mark.django_db
def test_schema_lists_the_workbench_endpoints() -> None:
    user = get_user_model().objects.create_user("schema-reader", password="a long passphrase 1")
    client = Client()
    client.force_login(user)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    offered = {(path, method) for path, operations in schema["paths"].items() for method in operations}
    missing = REQUIRED - offered
    assert not missing, f"endpoints missing from the schema: {sorted(missing)}"
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_without_warnings(tmp_path: Any) -> None:
    # drf-spectacular validates against the OpenAPI specification and fails on any warning (an unresolved
    # type, an ambiguous name), which would leave API clients guessing.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/faces/{face_id}/searches/" in (tmp_path / "schema.yml").read_text()
