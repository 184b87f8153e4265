"""The deployment files state the same limits and proxy trust as the app."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from django.conf import settings

from rfr.limits import MEGABYTE, request_body_limit

REPO = Path(__file__).resolve().parent.parent


def test_nginx_caps_the_body_where_the_app_does_and_passes_the_client_address() -> None:
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    match = re.search(r"client_max_body_size\s+(\d+)m;", conf)
    assert match is not None
    assert int(match.group(1)) * MEGABYTE == request_body_limit()  # nginx's "m" is 1,048,576 bytes
    zip_route = re.search(
        r"location ~ \^(/manage/galleries/)\[0-9\]\+(/enrol/zip/)\$ \{\s*client_max_body_size\s+(\d+)m;", conf
    )
    assert zip_route, "nginx lets a gallery's enrolment zip through at its own, larger cap"
    zip_path = f"{zip_route.group(1)}1{zip_route.group(2)}"
    assert int(zip_route.group(3)) * MEGABYTE == request_body_limit(zip_path)
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header X-Real-IP $remote_addr;" in conf


def test_compose_trusts_its_own_network_only() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    trusted = compose["x-rfr-env"]["RFR_TRUSTED_PROXIES"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    default_of = re.compile(r"\$\{\w+:-([^}]+)\}")
    assert default_of.fullmatch(trusted).group(1) == default_of.fullmatch(subnet).group(1)  # type: ignore[union-attr]
    assert "ports" not in compose["services"]["web"]  # reachable only through the proxy


def test_the_readme_documents_the_gunicorn_command_and_the_body_cap() -> None:
    readme = (REPO / "README.md").read_text()
    assert "gunicorn rfr.wsgi --limit-request-line" in readme
    assert "client_max_body_size 41m;" in readme
    assert settings.RFR_MAX_UPLOAD_BYTES == 40 * MEGABYTE
