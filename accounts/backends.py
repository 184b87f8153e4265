"""First entry of AUTHENTICATION_BACKENDS: refuses every sign-in for a locked username+address.

Raising PermissionDenied stops django.contrib.auth.authenticate() before any password is checked and fires
user_login_failed, which accounts.signals records. It covers every caller of authenticate(): the login page,
the admin login and the API token endpoint.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.selectors import login_lockout_active


class LockoutBackend:
    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kwargs: Any) -> None:
        if username and login_lockout_active(username=username, request=request) is not None:
            raise PermissionDenied("Too many failed sign-in attempts; try again later.")
        return None

    def get_user(self, user_id: Any) -> Any:
        # Being first in the list, this backend is what Client.force_login() records in test sessions, so it
        # must load users exactly as ModelBackend does.
        return ModelBackend().get_user(user_id)
