"""Reads for sign-in throttling, and for rfr's admin pages (users, roles and teams)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from guardian.conf import settings as guardian_settings

from accounts.models import LoginLockout, PasswordChangeRequired, Team
from accounts.roles import ROLES
from audit.services import client_ip


def login_max_failures() -> int:
    return int(getattr(settings, "RFR_LOGIN_MAX_FAILURES", 5))


def login_failure_window() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "RFR_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)))


def login_lockout_duration() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "RFR_LOGIN_LOCKOUT_SECONDS", 15 * 60)))


def login_key(username: str | None) -> str:
    # Lower-cased so "Alice" and "alice" share one counter: case variants must not multiply the attempts.
    return (username or "").strip().lower()[:150]


def request_ip(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


def login_lockout_active(*, username: str | None, request: HttpRequest | None) -> LoginLockout | None:
    return (
        LoginLockout.objects.filter(
            username=login_key(username), ip_address=request_ip(request), locked_until__gt=timezone.now()
        )
        .order_by("-locked_until")
        .first()
    )


# --- rfr's admin pages (/manage/) --------------------------------------------------------------------------------


def users_for_management(*, query: str = "") -> QuerySet[Any]:
    """Every account, for the admins' user list: with its groups and teams, filtered by a name fragment.
    django-guardian's stand-in for signed-out visitors is not an account anyone signs in to: left out."""
    users = (
        get_user_model()
        .objects.exclude(username=guardian_settings.ANONYMOUS_USER_NAME)
        .order_by("username")
        .prefetch_related("groups", "teams", "supervised_teams")
    )
    query = query.strip()
    if query:
        users = users.filter(
            Q(username__icontains=query) | Q(first_name__icontains=query) | Q(last_name__icontains=query)
        )
    return users


def user_roles(user: Any) -> list[str]:
    return sorted(group.name for group in user.groups.all() if group.name in ROLES)


def teams_for_management() -> QuerySet[Team]:
    return Team.objects.order_by("name").prefetch_related("members", "supervisors")


def password_change_required(user: Any) -> bool:
    """Whether `user` must choose a new password first (an admin set their current one)."""
    if not getattr(user, "is_authenticated", False):
        return False
    return PasswordChangeRequired.objects.filter(user_id=user.pk).exists()
