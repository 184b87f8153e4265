"""The client's address: believed from X-Forwarded-For only when the connecting peer is a configured proxy
(RFR_TRUSTED_PROXIES), and then used by both the sign-in lockout and the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.models import LoginFailure, LoginLockout
from audit.actions import AuditAction
from audit.models import AuditEvent
from rfr.proxies import client_address, trusted_proxy_networks
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PROXY = "172.30.57.10"
CLIENT = "203.0.113.9"
OTHER_CLIENT = "198.51.100.23"


@pytest.fixture
def behind_proxy(settings: Any) -> None:
    settings.RFR_TRUSTED_PROXIES = ["172.30.57.0/24"]


def sign_in(username: str, password: str, *, peer: str, forwarded_for: str | None = None) -> Any:
    meta: dict[str, Any] = {"REMOTE_ADDR": peer}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return Client(**meta).post("/accounts/login/", {"username": username, "password": password})


def last_failure_ip() -> str | None:
    event = AuditEvent.objects.filter(action=AuditAction.AUTH_LOGIN_FAILED).order_by("-pk").first()
    assert event is not None
    return event.ip_address


def test_no_proxy_is_trusted_by_default() -> None:
    assert django_settings.RFR_TRUSTED_PROXIES == []
    assert client_address({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": CLIENT}) == PROXY


def test_behind_a_trusted_proxy_audit_and_lockout_use_the_forwarded_client(behind_proxy: None) -> None:
    make_user("ivy")
    sign_in("ivy", "wrong password", peer=PROXY, forwarded_for=CLIENT)
    assert last_failure_ip() == CLIENT
    assert list(LoginFailure.objects.values_list("ip_address", flat=True)) == [CLIENT]

    for _ in range(django_settings.RFR_LOGIN_MAX_FAILURES - 1):
        sign_in("ivy", "wrong password", peer=PROXY, forwarded_for=CLIENT)
    assert list(LoginLockout.objects.values_list("ip_address", flat=True)) == [CLIENT]
    # The locked-out client cannot sign in, even with the password...
    assert sign_in("ivy", PASSWORD, peer=PROXY, forwarded_for=CLIENT).status_code == 200
    # ...but another person behind the same proxy is not locked out by them.
    response = sign_in("ivy", PASSWORD, peer=PROXY, forwarded_for=OTHER_CLIENT)
    assert response.status_code == 302, response.content[:300]
    signed_in = AuditEvent.objects.filter(action=AuditAction.AUTH_LOGIN).order_by("-pk").first()
    assert signed_in is not None and signed_in.ip_address == OTHER_CLIENT


def test_from_an_untrusted_peer_the_forwarding_headers_are_ignored(behind_proxy: None) -> None:
    make_user("ivy")
    attacker = "192.0.2.66"
    for _ in range(django_settings.RFR_LOGIN_MAX_FAILURES):
        sign_in("ivy", "wrong password", peer=attacker, forwarded_for=CLIENT)
    assert last_failure_ip() == attacker
    assert set(LoginLockout.objects.values_list("ip_address", flat=True)) == {attacker}
    # The real client, whose address the attacker claimed, can still sign in through the proxy.
    assert sign_in("ivy", PASSWORD, peer=PROXY, forwarded_for=CLIENT).status_code == 302


def test_the_nearest_untrusted_hop_is_the_client(settings: Any) -> None:
    settings.RFR_TRUSTED_PROXIES = ["172.30.57.0/24", "10.0.0.1"]
    networks = trusted_proxy_networks()
    # A client-supplied X-Forwarded-For is kept by nginx at the left: it is not believed.
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"1.2.3.4, {CLIENT}, 10.0.0.1"}
    assert client_address(meta, networks) == CLIENT
    assert client_address({"REMOTE_ADDR": PROXY, "HTTP_X_REAL_IP": CLIENT}, networks) == CLIENT
    assert client_address({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "not-an-ip"}, networks) == PROXY
    assert client_address({"REMOTE_ADDR": PROXY}, networks) == PROXY
    assert client_address({"REMOTE_ADDR": "::ffff:172.30.57.10", "HTTP_X_FORWARDED_FOR": CLIENT}, networks) == CLIENT


def test_an_api_audit_row_names_the_forwarded_client(behind_proxy: None) -> None:
    user = make_user("ivy")
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    client.force_login(user)
    response = client.post(
        "/api/cases/",
        {"reference": "OP-9", "title": "T", "purpose": "suspect", "legal_basis": "Prevention of crime."},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content[:300]
    event = AuditEvent.objects.get(action=AuditAction.CASE_CREATED)
    assert event.ip_address == CLIENT


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(settings: Any) -> None:
    settings.RFR_TRUSTED_PROXIES = ["172.30.57.0/24"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    trusted = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https").get("/healthz")
    assert "Strict-Transport-Security" in trusted
    spoofed = Client(REMOTE_ADDR="192.0.2.66", HTTP_X_FORWARDED_PROTO="https").get("/healthz")
    assert "Strict-Transport-Security" not in spoofed
