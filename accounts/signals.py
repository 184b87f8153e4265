"""Audit every sign-in, sign-out and failed sign-in, wherever Django's auth machinery reports it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.selectors import login_lockout_active
from accounts.services import login_failure_record, login_success_record, logout_record


@receiver(user_logged_in, dispatch_uid="accounts.audit_login")
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    login_success_record(user=user, request=request)


@receiver(user_logged_out, dispatch_uid="accounts.audit_logout")
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    logout_record(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already replaced the password in `credentials`; only the attempted username is used.
    username = credentials.get("username")
    locked = login_lockout_active(username=username, request=request) is not None
    login_failure_record(username=username, request=request, reason="locked_out" if locked else "bad_credentials")
