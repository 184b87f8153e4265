"""The main navigation (by role) and the home dashboard (my open cases, under need-to-know)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMIN
from cases.lifecycle import case_close, case_create
from tests.factories import build_case_world, make_user

pytestmark = pytest.mark.django_db
NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.DOTALL)


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _page(user: Any, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def _nav_links(html: str) -> dict[str, str]:
    match = NAV.search(html)
    assert match is not None, "the main nav landmark is missing"
    return {label: href for href, label in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', match.group(1))}


def test_nav_by_role() -> None:
    world = build_case_world()
    investigator_nav = _nav_links(_page(world.users["owner"], reverse("home")))
    assert investigator_nav == {
        "Cases": reverse("cases:list"),
        "API docs": reverse("api-docs"),
        "Review queue": reverse("cases:queue"),  # with its counts once something waits (cases.queue)
        "Notifications": reverse("cases:notifications"),
    }
    supervisor_nav = _nav_links(_page(world.users["supervisor"], reverse("home")))
    assert supervisor_nav["Audit"] == reverse("audit-list") and "Admin" not in supervisor_nav
    admin = make_user("plain_admin", role=ADMIN)  # admin role, staff, not superuser
    admin_nav = _nav_links(_page(admin, reverse("home")))
    assert admin_nav["Audit"] == reverse("audit-list") and admin_nav["Admin"] == reverse("admin:index")
    # Every link the nav offers opens for that user.
    for user, nav in ((world.users["supervisor"], supervisor_nav), (admin, admin_nav)):
        for href in nav.values():
            _page(user, href)
    superuser_nav = _nav_links(_page(world.users["admin"], reverse("home")))
    assert superuser_nav["Galleries"] == reverse("search:manage-galleries")
    assert admin_nav["Galleries"] == reverse("search:manage-galleries")


def test_nav_marks_current_page_and_signs_out() -> None:
    world = build_case_world()
    html = _page(world.users["owner"], reverse("cases:list"))
    assert f'<a href="{reverse("cases:list")}" aria-current="page">Cases</a>' in html
    detail = _page(world.users["owner"], reverse("cases:detail", args=[world.case.pk]))
    assert f'<a href="{reverse("cases:list")}" aria-current="true">Cases</a>' in detail
    form = re.search(r'<form method="post" action="([^"]+)" class="signout-form">(.*?)</form>', html, re.DOTALL)
    assert form is not None and form.group(1) == reverse("logout")
    assert "csrfmiddlewaretoken" in form.group(2) and ">Sign out</button>" in form.group(2)

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["owner"])
    page = client.get(reverse("home")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get(reverse("home")).status_code == 302  # signed out


def test_signed_out_pages_show_no_nav_or_sign_out() -> None:
    html = Client().get(reverse("login")).content.decode()
    assert _nav_links(html) == {}
    assert "Sign out" not in html


def test_home_lists_my_open_cases_only() -> None:
    world = build_case_world()
    owner = world.users["owner"]
    closed = case_create(
        owner=owner,
        reference="OP-CLOSED/9",
        title="Closed one",
        purpose="other",
        offence_category="",
        legal_basis="test",
        team=world.team_a,
    )
    case_close(case=closed, closed_by=owner)
    home = _page(owner, reverse("home"))
    assert "OP-REDWOOD/1" in home and "OP-CLOSED/9" not in home
    assert reverse("cases:workbench", args=[world.case.pk]) in home
    assert reverse("cases:create") in home
    assert "intelligence only, not an identification" in home
    assert "OP-REDWOOD/1" in _page(world.users["supervisor"], reverse("home"))  # via the team
    for outsider in ("outsider", "other_sup", "admin"):
        assert "OP-REDWOOD/1" not in _page(world.users[outsider], reverse("home")), outsider
