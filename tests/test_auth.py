"""Sign-in: audited logins, logouts and failures; lockout; idle expiry; TOTP; the API token endpoint."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import LoginLockout
from audit.models import AuditEvent
from audit.services import canonical_content
from audit.verify import audit_chain_verify
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
IP = "192.0.2.10"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _client(ip: str = IP) -> Client:
    return Client(REMOTE_ADDR=ip, HTTP_USER_AGENT="pytest-browser/1")


def _login(client: Client, username: str, password: str, **extra: str) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password, **extra})


def test_login_and_logout_are_audited() -> None:
    user = make_user("alice")
    client = _client()
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    login = AuditEvent.objects.get(action="auth.login")
    assert (login.actor_id, login.ip_address, login.user_agent) == (user.pk, IP, "pytest-browser/1")
    assert client.get(reverse("logout")).status_code == 405  # logout is POST only (CSRF-protected)
    assert client.post(reverse("logout")).status_code == 302
    assert AuditEvent.objects.get(action="auth.logout").actor_id == user.pk
    assert client.get(reverse("home")).status_code == 302


def test_failed_login_is_audited_with_username_and_no_password() -> None:
    make_user("alice")
    wrong = "not-the-password-xyz"
    response = _login(_client(), "Alice", wrong)
    assert response.status_code == 200 and "correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor_id is None
    assert event.detail == {"username": "alice", "reason": "bad_credentials"}
    assert event.actor_username == "alice"
    for row in AuditEvent.objects.all():
        assert wrong not in canonical_content(row) and PASSWORD not in canonical_content(row)


def test_five_failures_lock_the_username_from_that_address(settings: Any) -> None:
    settings.RFR_LOGIN_MAX_FAILURES = 5
    make_user("bob")
    client = _client()
    for _ in range(5):
        assert _login(client, "bob", "wrong password 123").status_code == 200
    lock = LoginLockout.objects.get(username="bob", ip_address=IP)
    assert lock.locked_until > timezone.now() + dt.timedelta(minutes=14)
    assert AuditEvent.objects.filter(action="auth.lockout", detail__username="bob").count() == 1
    # Even the right password is refused while locked, and the refusal is audited.
    response = _login(client, "bob", PASSWORD)
    assert response.status_code == 200 and "Too many failed sign-in attempts" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed", detail__reason="locked_out").count() == 1
    assert not AuditEvent.objects.filter(action="auth.login").exists()
    # Another address is not locked (the lock is per username + address).
    assert _login(_client("192.0.2.99"), "bob", PASSWORD).status_code == 302
    # Once the lock has run out, the right password works again.
    LoginLockout.objects.filter(pk=lock.pk).update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    assert _login(client, "bob", PASSWORD).status_code == 302
    assert audit_chain_verify().ok


def test_fewer_failures_than_the_limit_do_not_lock_and_success_resets(settings: Any) -> None:
    settings.RFR_LOGIN_MAX_FAILURES = 3
    make_user("carol")
    client = _client()
    for _ in range(2):
        _login(client, "carol", "wrong password 123")
    assert _login(client, "carol", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for _ in range(2):
        _login(client, "carol", "wrong password 123")
    assert not LoginLockout.objects.exists()  # the success cleared the earlier failures


def test_session_expires_after_inactivity_and_activity_extends_it(settings: Any) -> None:
    settings.SESSION_COOKIE_AGE = 120
    assert settings.SESSION_SAVE_EVERY_REQUEST
    make_user("dave")
    client = _client()
    _login(client, "dave", PASSWORD)
    key = client.session.session_key

    def expiry() -> dt.datetime:
        return Session.objects.get(session_key=key).expire_date

    assert abs((expiry() - timezone.now()).total_seconds() - 120) < 10
    # Activity pushes the deadline on: a session about to expire gets a fresh 120 s from this request.
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + dt.timedelta(seconds=5))
    assert client.get(reverse("home")).status_code == 200
    assert (expiry() - timezone.now()).total_seconds() > 100
    # Idle past the deadline: the session is gone and the user must sign in again.
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def _confirmed_device(user: Any) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def test_totp_user_needs_the_code_to_sign_in(settings: Any) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp delays retries after a wrong code; not under test here
    user = make_user("erin")
    device = _confirmed_device(user)
    client = _client()
    response = _login(client, "erin", PASSWORD)
    assert response.status_code == 200 and "6-digit code" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed", detail__reason="otp_invalid").exists()
    wrong = "000000" if _code(device) != "000000" else "111111"
    assert _login(client, "erin", PASSWORD, otp_token=wrong).status_code == 200
    assert _login(client, "erin", PASSWORD, otp_token=_code(device)).status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_admin_must_enrol_totp_when_required(settings: Any) -> None:
    settings.RFR_REQUIRE_ADMIN_TOTP = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    make_user("root", role="admin", superuser=True)
    client = _client()
    assert _login(client, "root", PASSWORD).status_code == 302
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("totp"))
    assert client.get("/api/cases/").status_code == 403
    page = client.get(reverse("totp"))
    assert page.status_code == 200 and "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user__username="root", confirmed=False)
    assert client.post(reverse("totp"), {"otp_token": "12"}).status_code == 200  # wrong code: stays
    response = client.post(reverse("totp"), {"otp_token": _code(device), "next": "/"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="auth.totp_enrolled", actor_username="root").exists()
    device.refresh_from_db()
    assert device.confirmed


def test_admin_without_totp_is_not_redirected_when_not_required(settings: Any) -> None:
    settings.RFR_REQUIRE_ADMIN_TOTP = False
    make_user("root", role="admin", superuser=True)
    client = _client()
    _login(client, "root", PASSWORD)
    assert client.get(reverse("home")).status_code == 200


def test_api_token_is_audited_and_subject_to_lockout(settings: Any) -> None:
    settings.RFR_LOGIN_MAX_FAILURES = 3
    user = make_user("frank")
    client = _client()
    url = reverse("api-auth-token")
    response = client.post(url, {"username": "frank", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["token"]
    assert AuditEvent.objects.get(action="auth.token_obtained").actor_id == user.pk
    token = response.json()["token"]
    assert Client().get("/api/cases/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    for _ in range(3):
        bad = client.post(url, {"username": "frank", "password": "wrong password 1"})
        assert bad.status_code == 400 and bad["Content-Type"].startswith("application/json")
    assert AuditEvent.objects.filter(action="auth.login_failed", detail__username="frank").count() == 3
    assert AuditEvent.objects.filter(action="auth.lockout").count() == 1
    assert client.post(url, {"username": "frank", "password": PASSWORD}).status_code == 400  # locked


def test_api_token_requires_totp_code_for_enrolled_user() -> None:
    user = make_user("gina")
    device = _confirmed_device(user)
    url = reverse("api-auth-token")
    assert _client().post(url, {"username": "gina", "password": PASSWORD}).status_code == 400
    ok = _client().post(url, {"username": "gina", "password": PASSWORD, "otp_token": _code(device)})
    assert ok.status_code == 200
