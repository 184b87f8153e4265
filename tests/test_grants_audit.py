"""Every grant reaches the audit trail whatever the path (issue 9, finding 1): through the services once, with
their actor; through the ORM (a shell, another app) by the receivers of accounts.signals; never twice."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import ApiToken, Team
from accounts.roles import ADMIN, INVESTIGATOR, SUPERVISOR
from accounts.services import (
    team_supervisor_add,
    totp_device_create,
    totp_devices_remove,
    user_create,
    user_role_grant,
    user_role_revoke,
)
from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from rfr.errors import Forbidden
from tests.factories import build_case_world, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _actions_since(seq: int) -> list[str]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True))


def _last_seq() -> int:
    last = AuditEvent.objects.order_by("-seq").first()
    return last.seq if last else 0


def test_services_record_each_grant_once() -> None:
    boss = make_user("boss", role=ADMIN)
    start = _last_seq()
    ivy = user_create(username="ivy", password="x" * 16, created_by=boss)
    user_role_grant(user=ivy, role=SUPERVISOR, granted_by=boss)
    team = Team.objects.create(name="Major crime")  # no audit for a bare team row: not a grant
    team_supervisor_add(team=team, user=ivy, added_by=boss)
    user_role_revoke(user=ivy, role=SUPERVISOR, revoked_by=boss)
    device = totp_device_create(user=ivy)
    totp_devices_remove(user=ivy, removed_by=boss)
    assert _actions_since(start) == [
        "user.created",
        "role.granted",
        "team.supervisor_added",  # the team's supervisor group follows, unrecorded (cases.signals)
        "role.revoked",
        "auth.totp_device_added",
        "auth.totp_removed",
    ]
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()


def test_nobody_changes_their_own_grants_through_the_services() -> None:
    boss = make_user("boss", role=ADMIN)
    team = Team.objects.create(name="Major crime")
    with pytest.raises(Forbidden):
        user_role_grant(user=boss, role=SUPERVISOR, granted_by=boss)
    with pytest.raises(Forbidden):
        team_supervisor_add(team=team, user=boss, added_by=boss)
    assert not boss.groups.filter(name=SUPERVISOR).exists() and not team.supervisors.exists()
    refused = AuditEvent.objects.filter(action="grant.refused", actor=boss).order_by("seq")
    assert [e.detail["reason"] for e in refused] == ["self_change", "self_change"]


def test_orm_path_grants_are_recorded() -> None:
    start = _last_seq()
    User = get_user_model()
    # A superuser made in a shell (manage.py createsuperuser takes the same path).
    root = User.objects.create_superuser("root", "root@example.org", "x" * 16)
    ivy = User.objects.create_user("ivy", password="x" * 16)
    ivy.groups.add(Group.objects.get(name=INVESTIGATOR))
    Group.objects.get(name=ADMIN).user_set.add(ivy)  # from the group's side
    ivy.is_staff = True
    ivy.save()
    ivy.is_superuser = True
    ivy.save()
    team = Team.objects.create(name="Major crime")
    team.supervisors.add(ivy)
    ivy.teams.add(team)  # from the user's side
    ivy.groups.clear()
    ivy.user_permissions.add(Permission.objects.get(codename="view_user"))
    actions = _actions_since(start)
    assert actions == [
        "user.created",  # root, with is_superuser in the detail
        "user.created",
        "role.granted",
        "role.granted",
        "user.staff_changed",
        "user.superuser_changed",
        "team.supervisor_added",  # its supervisor group follows unrecorded
        "team.member_added",
        "role.revoked",  # clear(): both roles and the team's supervisor group, each recorded
        "role.revoked",
        "group.user_removed",
        "permission.granted",
    ], actions
    created_root = AuditEvent.objects.filter(action="user.created", seq__gt=start).order_by("seq").first()
    assert created_root is not None and created_root.detail["is_superuser"] is True
    assert created_root.target_id == str(root.pk)
    superuser = AuditEvent.objects.get(action="user.superuser_changed")
    assert superuser.detail == {"username": "ivy", "via": "outside_services", "from": False, "to": True}
    assert all(e.detail.get("via") == "outside_services" for e in AuditEvent.objects.filter(seq__gt=start))
    assert audit_chain_verify().ok


def test_orm_path_supervisor_group_and_case_permission_are_recorded() -> None:
    world = build_case_world()
    sneaky = make_user("sneaky", role=ADMIN)
    start = _last_seq()
    team_group = Group.objects.get(name=f"rfr-team-{world.team_a.pk}-supervisors")
    sneaky.groups.add(team_group)  # the attack of finding 1, done in a shell
    assign_perm("cases.view_case", sneaky, world.case)
    remove_perm("cases.view_case", sneaky, world.case)
    events = list(AuditEvent.objects.filter(seq__gt=start).order_by("seq"))
    assert [e.action for e in events] == ["group.user_added", "permission.granted", "permission.revoked"]
    assert events[0].detail["group"] == team_group.name and events[0].target_id == str(sneaky.pk)
    assert events[1].detail["object_type"] == "cases.case" and events[1].detail["object_id"] == str(world.case.pk)
    assert events[1].detail["permission"] == "cases.view_case"


def test_case_services_do_not_double_record_their_permissions() -> None:
    start = _last_seq()
    world = build_case_world()
    actions = _actions_since(start)
    assert "permission.granted" not in actions and "group.user_added" not in actions
    assert actions.count("case.created") == 1 and actions.count("case.member_added") == 1
    assert world.case.pk


def test_orm_path_tokens_and_devices_are_recorded() -> None:
    ivy = make_user("ivy")
    start = _last_seq()
    device = TOTPDevice.objects.create(user=ivy, name="phone", confirmed=False)
    device.confirmed = True
    device.save()
    device.save()  # a save that changes nothing is not a grant
    device.delete()
    token = ApiToken.objects.create(
        user=ivy, key_hash="0" * 64, prefix="00000000", expires_at="2030-01-01T00:00Z", password_check="x"
    )
    token.delete()
    assert _actions_since(start) == [
        "auth.totp_device_added",
        "auth.totp_enrolled",
        "auth.totp_removed",
        "auth.token_obtained",
        "auth.token_revoked",
    ]


def test_sign_in_writes_no_grant_events(client: Any) -> None:
    make_user("ivy")
    start = _last_seq()
    client.post("/accounts/login/", {"username": "ivy", "password": "correct horse battery staple 42"})
    assert _actions_since(start) == ["auth.login"]  # the last_login save is not a flag change
    assert connection.vendor in ("postgresql", "sqlite")
