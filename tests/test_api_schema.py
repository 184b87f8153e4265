"""The OpenAPI schema documents every endpoint the issue names."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth import get_user_model
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
