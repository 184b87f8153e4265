"""The Django admin, re-running issue 9's attacks (finding 1): an admin (role `admin`, staff, not superuser)
cannot make themselves superuser, read anyone's API token, put themselves in a team's supervisor group or
change anything else there; each refused attempt is in the audit trail. Superusers (made only outside the web)
can still repair things there, and every grant they make is recorded with their name."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMIN, SUPERVISOR
from accounts.services import api_token_issue
from audit.models import AuditEvent
from tests.factories import build_case_world, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _user_form(user: Any, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "groups": [g.pk for g in user.groups.all()],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_admin_cannot_tick_their_own_superuser_flag_and_the_attempt_is_audited() -> None:
    boss = make_user("boss", role=ADMIN)
    assert boss.is_staff and not boss.is_superuser
    client = _client(boss)
    url = reverse("admin:auth_user_change", args=[boss.pk])
    assert client.get(url).status_code == 200  # read-only view
    response = client.post(url, _user_form(boss, is_superuser="on"))
    assert response.status_code == 403
    boss.refresh_from_db()
    assert not boss.is_superuser
    refused = AuditEvent.objects.get(action="grant.refused")
    assert refused.actor == boss and refused.detail["reason"] == "admin_read_only" and url in refused.detail["what"]
    assert not AuditEvent.objects.filter(action="user.superuser_changed").exists()


def test_superuser_flag_is_not_editable_in_the_admin_even_for_a_superuser() -> None:
    root = make_user("root", role=None, superuser=True)
    boss = make_user("boss", role=ADMIN)
    client = _client(root)
    url = reverse("admin:auth_user_change", args=[boss.pk])
    response = client.post(url, _user_form(boss, is_superuser="on"))
    assert response.status_code == 302  # saved, but the flag is read-only and ignored
    boss.refresh_from_db()
    assert not boss.is_superuser


def test_tokens_and_totp_keys_are_not_in_the_admin() -> None:
    root = make_user("root", role=None, superuser=True)
    ivy = make_user("ivy")
    key, _ = api_token_issue(user=ivy, totp_verified=False)
    client = _client(root)
    for path in (
        "/admin/authtoken/tokenproxy/",
        "/admin/authtoken/token/",
        "/admin/accounts/apitoken/",
        "/admin/otp_totp/totpdevice/",
    ):
        assert client.get(path).status_code == 404, path
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert not registered & {"authtoken.token", "authtoken.tokenproxy", "accounts.apitoken", "otp_totp.totpdevice"}
    assert key not in client.get(reverse("admin:auth_user_change", args=[ivy.pk])).content.decode()


def test_admin_cannot_join_a_team_supervisor_group_through_the_admin() -> None:
    world = build_case_world()
    boss = make_user("boss", role=ADMIN)
    team_group = Group.objects.get(name=f"rfr-team-{world.team_a.pk}-supervisors")
    client = _client(boss)
    response = client.post(
        reverse("admin:auth_user_change", args=[boss.pk]),
        _user_form(boss, groups=[*[g.pk for g in boss.groups.all()], team_group.pk]),
    )
    assert response.status_code == 403
    assert not boss.groups.filter(pk=team_group.pk).exists()
    response = client.post(reverse("admin:auth_group_change", args=[team_group.pk]), {"name": team_group.name})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="grant.refused", actor=boss).count() == 2
    # Nor add an account, nor reset someone's password to sign in as them.
    assert client.post(reverse("admin:auth_user_add"), {"username": "x"}).status_code == 403
    owner = world.users["owner"]
    response = client.post(
        reverse("admin:auth_user_password_change", args=[owner.pk]),
        {"password1": "taken over 123456", "password2": "taken over 123456"},
    )
    assert response.status_code == 403
    owner.refresh_from_db()
    assert not owner.check_password("taken over 123456")
    assert AuditEvent.objects.filter(action="grant.refused", actor=boss).count() == 4


def test_superuser_edits_in_the_admin_are_recorded_with_their_name() -> None:
    root = make_user("root", role=None, superuser=True)
    ivy = make_user("ivy")
    client = _client(root)
    supervisor = Group.objects.get(name=SUPERVISOR)
    response = client.post(
        reverse("admin:auth_user_change", args=[ivy.pk]),
        _user_form(ivy, is_staff="on", groups=[*[g.pk for g in ivy.groups.all()], supervisor.pk]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    granted = AuditEvent.objects.get(action="role.granted", detail__role=SUPERVISOR, target_id=str(ivy.pk))
    assert granted.actor == root and granted.detail["via"] == "outside_services"
    staff = AuditEvent.objects.get(action="user.staff_changed", target_id=str(ivy.pk))
    assert staff.actor == root and staff.detail["to"] is True
    # Only role groups are offered: a team's supervisor group is not a choice.
    world_group = Group.objects.create(name="rfr-team-99-supervisors")
    form = client.get(reverse("admin:auth_user_change", args=[ivy.pk])).content.decode()
    assert world_group.name not in form


def test_staff_can_still_read_the_admin() -> None:
    boss = make_user("boss", role=ADMIN)
    client = _client(boss)
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200
    page = client.get(reverse("admin:search_gallery_changelist"))
    assert page.status_code == 200 and "Add gallery" not in page.content.decode()
