"""Production refuses the built-in secret key; every response carries the security headers; case, audit,
admin and API responses are never stored by a cache; the API docs are for signed-in people and load nothing
from another site; no template needs an inline script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.factories import CaseWorld, build_case_world, workbench_objects_create

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "RFR_SECRET_KEY", "RFR_DEBUG"}
    }
    clean["DJANGO_SETTINGS_MODULE"] = "rfr.settings"  # not the test suite's settings, which set a key
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {"DATABASE_URL": "postgres://u@db.invalid:5432/rfr", "REDIS_URL": "redis://cache.invalid:6379/0"}
PRINT = (
    "from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
)


def test_the_production_shape_refuses_to_start_on_the_built_in_key() -> None:
    result = manage("check", env=PRODUCTION)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "RFR_SECRET_KEY must be set" in result.stderr
    started = manage("check", env={**PRODUCTION, "RFR_SECRET_KEY": "k" * 60})
    assert started.returncode == 0, started.stderr


@pytest.mark.embedded
def test_the_embedded_default_runs_on_the_built_in_key_and_check_deploy_flags_it(tmp_path: Path) -> None:
    env = {"RFR_DATA_DIR": str(tmp_path)}
    assert manage("check", env=env).returncode == 0
    deploy = manage("check", "--deploy", env=env)
    assert deploy.returncode != 0
    assert "rfr.E001" in deploy.stderr + deploy.stdout
    keyed = manage("check", "--deploy", env={**env, "RFR_SECRET_KEY": "a-long-random-deployment-key-" + "9f" * 20})
    assert "rfr.E001" not in keyed.stderr + keyed.stdout


@pytest.mark.embedded
def test_secure_cookies_bring_hsts(tmp_path: Path) -> None:
    env = {"RFR_DATA_DIR": str(tmp_path)}
    plain = manage("shell", "-c", PRINT, env={**env, "RFR_SECURE_COOKIES": "0"})
    assert plain.stdout.splitlines()[-1].split() == ["0", "False", "False"], plain.stderr
    secure = manage("shell", "-c", PRINT, env={**env, "RFR_SECURE_COOKIES": "1"})
    assert secure.stdout.splitlines()[-1].split() == ["31536000", "True", "True"], secure.stderr


@pytest.fixture
def world(db: Any) -> CaseWorld:
    world = build_case_world()
    workbench_objects_create(world)
    return world


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_security_headers(response: Any) -> None:
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no other site
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def assert_no_store(response: Any) -> None:
    assert "no-store" in response.get("Cache-Control", ""), (response.status_code, response.get("Cache-Control"))


@pytest.mark.django_db
def test_case_audit_admin_and_api_responses_are_never_stored(world: CaseWorld) -> None:
    owner, admin = signed_in(world.users["owner"]), signed_in(world.users["admin"])
    search, candidate = world.extra["search"], world.extra["candidate"]
    for client, url in [
        (owner, "/"),
        (owner, f"/cases/{world.case.pk}/"),
        (owner, f"/cases/{world.case.pk}/workbench/"),
        (owner, f"/searches/{search.pk}/"),
        (owner, f"/candidates/{candidate.pk}/"),
        (owner, f"/probes/{world.extra['probe'].pk}/image"),
        (owner, f"/cases/{world.case.pk}/timeline/"),
        (admin, "/audit/"),
        (admin, "/admin/"),
        (owner, "/api/cases/"),
        (owner, f"/api/cases/{world.case.pk}/"),
        (owner, f"/api/searches/{search.pk}/"),
        (Client(), "/api/cases/"),  # the 401 too
        (Client(), "/accounts/login/"),
    ]:
        response = client.get(url)
        assert response.status_code in (200, 401), (url, response.status_code)
        assert_no_store(response)
        assert_security_headers(response)


@pytest.mark.django_db
def test_the_health_check_may_be_cached_and_still_carries_the_policy() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert_security_headers(response)


@pytest.mark.django_db
def test_the_api_docs_and_schema_are_for_signed_in_people(world: CaseWorld) -> None:
    anonymous = Client()
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/accounts/login/")
    assert anonymous.get("/api/schema/").status_code == 401
    owner = signed_in(world.users["owner"])
    assert owner.get("/api/schema/").status_code == 200
    page = owner.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert_no_store(page)
    # Everything the page loads comes from this server: no CDN, nothing unpinned.
    loaded = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html)
    assert all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script would need 'unsafe-inline'"
    assert "cdn" not in html.lower()
    if "swagger-ui" in html:  # drf-spectacular-sidecar installed: Swagger UI, its start-up script a file
        script = owner.get("/api/docs/?script")
        assert script.status_code == 200
        assert script["Content-Type"].startswith("application/javascript")
        assert any(url.startswith("/static/drf_spectacular_sidecar/") for url in loaded), loaded
    else:  # without it: a plain page listing the operations
        assert "/api/cases/" in html


TEMPLATE_DIRS = [ROOT / "templates", *(ROOT / app / "templates" for app in ("accounts", "audit", "cases", "search"))]


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    offenders = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html") if folder.is_dir() else []:
            text = path.read_text()
            if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
                offenders.append(f"{path}: inline <script>")
            if re.search(r"\son[a-z]+\s*=", text):
                offenders.append(f"{path}: inline event handler")
            if "javascript:" in text.lower():
                offenders.append(f"{path}: javascript: URL")
    assert not offenders, offenders
