"""Reads for sign-in throttling."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import LoginLockout
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
