"""API tokens (issue 9, findings 1 and 4): never readable after issue, revocable, expiring, and dead after a
password reset or change, a deactivation, or the admin-TOTP policy being switched on."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.roles import ADMIN
from accounts.services import user_deactivate, user_password_set
from audit.models import AuditEvent
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def _issue(username: str, password: str = PASSWORD, **extra: str) -> Any:
    return APIClient().post(reverse("api-auth-token"), {"username": username, "password": password, **extra})


def _get_cases(key: str) -> int:
    return APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/cases/").status_code


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def test_token_is_shown_once_and_stored_only_as_a_hash(settings: Any) -> None:
    settings.RFR_TOKEN_TTL_HOURS = 3
    user = make_user("ivy")
    response = _issue("ivy")
    assert response.status_code == 200
    key = response.json()["token"]
    assert _get_cases(key) == 200
    token = ApiToken.objects.get(user=user)
    assert token.key_hash != key and key not in token.key_hash and len(key) == 40
    # The key is in no column of the token table.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        assert not any(key in str(value) for row in cursor.fetchall() for value in row)
    expected = timezone.now() + dt.timedelta(hours=3)
    assert abs((token.expires_at - expected).total_seconds()) < 60
    # Each request for a token makes a new one: the old key is never handed out again.
    second = _issue("ivy").json()["token"]
    assert second != key and ApiToken.objects.filter(user=user).count() == 2
    event = AuditEvent.objects.filter(action="auth.token_obtained", actor=user).order_by("seq").last()
    assert event is not None and event.detail["token"] == second[:8] and key not in str(event.detail)


def test_expired_token_is_refused() -> None:
    make_user("ivy")
    key = _issue("ivy").json()["token"]
    ApiToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/cases/")
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_owner_revokes_the_token_in_use_through_the_api() -> None:
    user = make_user("ivy")
    key = _issue("ivy").json()["token"]
    other = _issue("ivy").json()["token"]
    response = APIClient(HTTP_AUTHORIZATION=f"Token {key}").delete(reverse("api-auth-token"))
    assert response.status_code == 204
    assert _get_cases(key) == 401
    assert _get_cases(other) == 200  # only the token presented
    event = AuditEvent.objects.get(action="auth.token_revoked")
    assert event.actor == user and event.detail["tokens"] == [key[:8]] and event.detail["reason"] == "revoked_by_owner"


def test_owner_revokes_all_tokens_on_the_page() -> None:
    user = make_user("ivy")
    keys = [_issue("ivy").json()["token"] for _ in range(2)]
    client = Client()
    client.force_login(user)
    page = client.get(reverse("api-tokens"))
    assert page.status_code == 200
    html = page.content.decode()
    assert keys[0][:8] in html and keys[0] not in html and keys[1] not in html  # prefixes only
    assert client.post(reverse("api-tokens"), {"revoke": "all"}).status_code == 302
    assert [_get_cases(key) for key in keys] == [401, 401]
    event = AuditEvent.objects.get(action="auth.token_revoked")
    assert event.actor == user and set(event.detail["tokens"]) == {key[:8] for key in keys}


def test_password_reset_by_an_admin_kills_old_tokens() -> None:
    admin = make_user("boss", role=ADMIN)
    victim = make_user("ivy")
    key = _issue("ivy").json()["token"]
    user_password_set(user=victim, password="a new long passphrase 77", set_by=admin)
    assert _get_cases(key) == 401
    token = ApiToken.objects.get(user=victim)
    assert token.revoked_reason == "password_reset"
    event = AuditEvent.objects.get(action="user.password_reset")
    assert event.actor == admin and event.detail["tokens_revoked"] == [key[:8]]
    # The admin can sign in as the user only with the new password, and that is on the record.
    assert _issue("ivy", "a new long passphrase 77").status_code == 200


def test_password_changed_outside_the_services_kills_tokens_and_is_recorded() -> None:
    user = make_user("ivy")
    key = _issue("ivy").json()["token"]
    # A shell: set_password + save, no service involved.
    same = get_user_model().objects.get(pk=user.pk)
    same.set_password("changed in a shell 1234")
    same.save()
    assert _get_cases(key) == 401
    event = AuditEvent.objects.get(action="user.password_changed")
    assert event.target_id == str(user.pk) and event.detail["via"] == "outside_services"


def test_password_check_refuses_a_token_even_with_no_signal() -> None:
    # A raw UPDATE sends no signal and revokes nothing; the token is still refused at use.
    user = make_user("ivy")
    key = _issue("ivy").json()["token"]
    get_user_model().objects.filter(pk=user.pk).update(password="md5$x$0123")
    response = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/cases/")
    assert response.status_code == 401 and "password" in response.json()["message"]


def test_deactivation_kills_tokens_by_service_and_by_orm() -> None:
    admin = make_user("boss", role=ADMIN)
    ivy, cole = make_user("ivy"), make_user("cole")
    ivy_key, cole_key = _issue("ivy").json()["token"], _issue("cole").json()["token"]
    user_deactivate(user=ivy, deactivated_by=admin, reason="left the force")
    assert _get_cases(ivy_key) == 401
    event = AuditEvent.objects.get(action="user.deactivated", target_id=str(ivy.pk))
    assert event.actor == admin and event.detail["tokens_revoked"] == [ivy_key[:8]]
    cole.is_active = False
    cole.save()
    assert _get_cases(cole_key) == 401
    assert AuditEvent.objects.get(action="user.deactivated", target_id=str(cole.pk)).detail["via"] == "outside_services"


def test_switching_on_admin_totp_kills_admin_tokens_issued_without_a_code(settings: Any) -> None:
    settings.RFR_REQUIRE_ADMIN_TOTP = False
    admin = make_user("boss", role=ADMIN)
    make_user("ivy")
    admin_key, ivy_key = _issue("boss").json()["token"], _issue("ivy").json()["token"]
    assert _get_cases(admin_key) == 200
    settings.RFR_REQUIRE_ADMIN_TOTP = True
    response = APIClient(HTTP_AUTHORIZATION=f"Token {admin_key}").get("/api/cases/")
    assert response.status_code == 401 and "authenticator" in response.json()["message"]
    assert _get_cases(ivy_key) == 200  # not an admin: the policy does not apply
    # Even after setting up TOTP, the old token stays dead; a token issued with a code works.
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    assert _get_cases(admin_key) == 401
    fresh = _issue("boss", otp_token=_code(device))
    assert fresh.status_code == 200 and _get_cases(fresh.json()["token"]) == 200


def test_legacy_drf_tokens_no_longer_authenticate() -> None:
    user = make_user("ivy")
    legacy = Token.objects.create(user=user)
    assert _get_cases(legacy.key) == 401
