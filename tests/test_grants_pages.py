"""rfr's own admin pages (/manage/) for users, roles and teams, and "who can see this case, and why" on the case
page and API. Every change made on the pages is an audited service call; non-admins get 403."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken, Team
from accounts.roles import ADMIN, SUPERVISOR
from accounts.services import api_token_issue, team_supervisor_add
from audit.models import AuditEvent
from cases.access import case_access_explain
from cases.permissions import case_member_grant
from tests.factories import PASSWORD, build_case_world, client_for, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
NEW_PASSWORD = "a brand new passphrase 9"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_are_for_admins_only() -> None:
    world = build_case_world()
    boss = make_user("boss", role=ADMIN)
    ivy = world.users["owner"]
    urls = [
        reverse("manage:index"),
        reverse("manage:users"),
        reverse("manage:user", args=[ivy.pk]),
        reverse("manage:teams"),
        reverse("manage:team", args=[world.team_a.pk]),
    ]
    for url in urls:
        assert _client(boss).get(url).status_code == 200, url
        for role in ("owner", "supervisor", "member"):
            assert _client(world.users[role]).get(url).status_code == 403, (url, role)
        assert Client().get(url).status_code == 302  # to sign-in
    post = reverse("manage:user-action", args=[ivy.pk, "grant_role"])
    assert _client(world.users["supervisor"]).post(post, {"role": ADMIN}).status_code == 403
    assert not ivy.groups.filter(name=ADMIN).exists()
    home = _client(boss).get("/").content.decode()
    assert f'href="{reverse("manage:index")}"' in home


def test_admin_creates_a_user_grants_and_revokes_a_role() -> None:
    boss = make_user("boss", role=ADMIN)
    client = _client(boss)
    weak = client.post(
        reverse("manage:users"),
        {"username": "newbie", "role": "investigator", "password1": "short", "password2": "short"},
    )
    assert weak.status_code == 400 and "password" in weak.content.decode().lower()
    assert not get_user_model().objects.filter(username="newbie").exists()
    response = client.post(
        reverse("manage:users"),
        {
            "username": "newbie",
            "first_name": "New",
            "role": "investigator",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    newbie = get_user_model().objects.get(username="newbie")
    assert response.status_code == 302 and response["Location"] == reverse("manage:user", args=[newbie.pk])
    listed = client.get(reverse("manage:users")).content.decode()
    assert ">newbie<" in listed and "AnonymousUser" not in listed  # guardian's stand-in is no account
    taken = client.post(
        reverse("manage:users"),
        {"username": "NEWBIE", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert taken.status_code == 400 and "taken" in taken.content.decode()
    client.post(reverse("manage:user-action", args=[newbie.pk, "grant_role"]), {"role": SUPERVISOR})
    client.post(reverse("manage:user-action", args=[newbie.pk, "revoke_role"]), {"role": "investigator"})
    assert sorted(newbie.groups.values_list("name", flat=True)) == [SUPERVISOR]
    events = AuditEvent.objects.filter(target_id=str(newbie.pk), actor=boss).order_by("seq")
    assert [(e.action, e.detail.get("role")) for e in events] == [
        ("user.created", "investigator"),
        ("role.granted", "investigator"),
        ("role.granted", SUPERVISOR),
        ("role.revoked", "investigator"),
    ]
    assert all(e.ip_address for e in events)  # from a request
    assert not newbie.is_superuser
    assert events[0].detail["change_required"] is True  # the admin chose it: the user picks their own at sign-in
    first = Client()
    first.post(reverse("login"), {"username": "newbie", "password": NEW_PASSWORD})
    assert first.get("/")["Location"].startswith(reverse("password-change"))


def test_admin_cannot_change_their_own_grants_on_the_pages() -> None:
    boss = make_user("boss", role=ADMIN)
    client = _client(boss)
    page = client.get(reverse("manage:user", args=[boss.pk])).content.decode()
    assert "Grant role" not in page and "own account" in page
    response = client.post(reverse("manage:user-action", args=[boss.pk, "grant_role"]), {"role": SUPERVISOR})
    assert response.status_code == 403
    assert not boss.groups.filter(name=SUPERVISOR).exists()
    team = Team.objects.create(name="Major crime")
    response = client.post(
        reverse("manage:team", args=[team.pk]), {"username": "boss", "relation": "supervisors", "add": "1"}
    )
    assert response.status_code == 403 and not team.supervisors.exists()
    assert AuditEvent.objects.filter(action="grant.refused", actor=boss).count() == 2
    assert "is_superuser" not in client.get(reverse("manage:users")).content.decode()


def test_admin_deactivates_resets_and_reactivates() -> None:
    boss = make_user("boss", role=ADMIN)
    ivy = make_user("ivy")
    key, _ = api_token_issue(user=ivy, totp_verified=False)
    client = _client(boss)
    url = lambda action: reverse("manage:user-action", args=[ivy.pk, action])  # noqa: E731
    mismatch = client.post(url("reset_password"), {"password1": NEW_PASSWORD, "password2": "other"})
    assert mismatch.status_code == 302  # back to the page with the error as a message
    ivy.refresh_from_db()
    assert ivy.check_password(PASSWORD)
    assert client.post(url("reset_password"), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302
    ivy.refresh_from_db()
    assert ivy.check_password(NEW_PASSWORD) and not ivy.check_password(PASSWORD)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/cases/").status_code == 401
    key, _ = api_token_issue(user=ivy, totp_verified=False)
    client.post(url("deactivate"), {"reason": "left the force"})
    ivy.refresh_from_db()
    assert not ivy.is_active
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/cases/").status_code == 401
    client.post(url("reactivate"))
    ivy.refresh_from_db()
    assert ivy.is_active
    key, _ = api_token_issue(user=ivy, totp_verified=False)
    client.post(url("revoke_tokens"))
    assert not ApiToken.objects.filter(user=ivy, revoked_at__isnull=True).exists()
    actions = list(
        AuditEvent.objects.filter(target_id=str(ivy.pk), actor=boss).order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["user.password_reset", "user.deactivated", "user.reactivated", "auth.token_revoked"]
    assert AuditEvent.objects.get(action="user.deactivated").detail["reason"] == "left the force"


def test_admin_manages_teams_and_supervisors() -> None:
    world = build_case_world()
    boss = make_user("boss", role=ADMIN)
    client = _client(boss)
    response = client.post(reverse("manage:teams"), {"name": "Cyber"})
    team = Team.objects.get(name="Cyber")
    assert response.status_code == 302
    assert client.post(reverse("manage:teams"), {"name": "cyber"}).status_code == 400
    new_sup = make_user("newsup", role=SUPERVISOR)
    team_url = reverse("manage:team", args=[world.team_a.pk])
    client.post(team_url, {"username": "newsup", "relation": "supervisors", "add": "1"})
    assert world.team_a.supervisors.filter(pk=new_sup.pk).exists()
    # The new supervisor sees the team's case at once, and the case says why.
    assert client_for(new_sup).get(f"/api/cases/{world.case.pk}/").status_code == 200
    access = {entry.username: entry for entry in case_access_explain(case=world.case)}
    assert access["newsup"].reason == "team_supervisor" and access["newsup"].granted_by == "boss"
    client.post(team_url, {"username": "newsup", "relation": "supervisors", "remove": "1"})
    assert client_for(new_sup).get(f"/api/cases/{world.case.pk}/").status_code == 404
    client.post(reverse("manage:team", args=[team.pk]), {"username": "member", "relation": "members", "add": "1"})
    assert team.members.filter(username="member").exists()
    unknown = client.post(team_url, {"username": "nobody", "relation": "members", "add": "1"})
    assert unknown.status_code == 302  # with an error message on the team page
    actions = list(
        AuditEvent.objects.filter(actor=boss, action__startswith="team.")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == ["team.created", "team.supervisor_added", "team.supervisor_removed", "team.member_added"]


def test_manage_index_lists_only_installed_sections() -> None:
    boss = make_user("boss", role=ADMIN)
    page = _client(boss).get(reverse("manage:index")).content.decode()
    assert reverse("manage:users") in page and reverse("manage:teams") in page


def test_case_access_explained_on_the_page_and_api() -> None:
    world = build_case_world()
    case = world.case
    access = case_access_explain(case=case)
    by_name = {entry.username: entry for entry in access}
    assert set(by_name) == {"owner", "member", "supervisor"}  # not admins, not other teams, not outsiders
    assert by_name["owner"].reason == "owner" and by_name["owner"].can_search
    member = by_name["member"]
    assert member.reason == "member" and member.granted_by == "owner" and member.can_search
    added = AuditEvent.objects.get(action="case.member_added", case_id=case.pk)
    assert member.audit_seq == added.seq
    supervisor = by_name["supervisor"]
    assert supervisor.reason == "team_supervisor" and not supervisor.can_search
    assert supervisor.granted_by == "admin" and "Team A" in supervisor.text
    # A permission granted outside the services is listed too, as such.
    case_member_grant(case, world.users["outsider"])
    entry = {e.username: e for e in case_access_explain(case=case)}["outsider"]
    assert entry.reason == "member" and "outside" in entry.text and entry.audit_seq is None

    page = _client(world.users["owner"]).get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert (
        "Who can see this case" in page and "Member, added by owner" in page and "Supervisor of the team Team A" in page
    )
    response = client_for(world.users["supervisor"]).get(f"/api/cases/{case.pk}/access/")
    assert response.status_code == 200
    rows = {row["username"]: row for row in response.json()}
    assert rows["member"]["granted_by"] == "owner" and rows["supervisor"]["reason"] == "team_supervisor"
    # Made a supervisor by a command, with no one signed in: said so, not put down to the supervisor themself.
    late = make_user("late-supervisor", role=SUPERVISOR)
    assert case.team is not None
    team_supervisor_add(team=case.team, user=late, added_by=None)
    event = AuditEvent.objects.filter(action="team.supervisor_added").order_by("-seq").first()
    assert event is not None and event.actor_username == ""
    late_entry = {e.username: e for e in case_access_explain(case=case)}["late-supervisor"]
    assert late_entry.granted_by == "a command run on the server" and "late-supervisor" not in late_entry.text
    assert client_for(world.users["admin"]).get(f"/api/cases/{case.pk}/access/").status_code == 404


def test_after_an_admin_reset_the_user_must_choose_their_own_password() -> None:
    boss = make_user("boss", role=ADMIN)
    ivy = make_user("ivy")
    _client(boss).post(
        reverse("manage:user-action", args=[ivy.pk, "reset_password"]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    reset = AuditEvent.objects.get(action="user.password_reset")
    assert reset.actor == boss and reset.detail["change_required"] is True
    # Whoever signs in with the admin's password (the admin included) meets the change page first ...
    client = Client()
    assert client.post(reverse("login"), {"username": "ivy", "password": NEW_PASSWORD}).status_code == 302
    response = client.get(reverse("cases:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("password-change"))
    assert client.get("/api/cases/").json()["error"] == "password_change_required"
    refused = APIClient().post(reverse("api-auth-token"), {"username": "ivy", "password": NEW_PASSWORD})
    assert refused.status_code == 403
    # ... and changing it is on the record, after which the account works again.
    own = "my very own passphrase 31"
    wrong = client.post(
        reverse("password-change"),
        {"old_password": "not it", "new_password1": own, "new_password2": own},
    )
    assert wrong.status_code == 400
    response = client.post(
        reverse("password-change"),
        {"old_password": NEW_PASSWORD, "new_password1": own, "new_password2": own, "next": "/cases/"},
    )
    assert response.status_code == 302 and response["Location"] == "/cases/"
    assert client.get(reverse("cases:list")).status_code == 200
    changed = AuditEvent.objects.get(action="user.password_changed")
    assert changed.actor == ivy and changed.target_id == str(ivy.pk)
    assert APIClient().post(reverse("api-auth-token"), {"username": "ivy", "password": own}).status_code == 200
