"""API tokens: hashing, validity, and the DRF authentication class that enforces it on every API request.

A token is refused (401) when it is unknown, revoked, expired (`RFR_TOKEN_TTL_HOURS`), when its user is
inactive, when its user's password has changed since it was issued, and, while `RFR_REQUIRE_ADMIN_TOTP` is on,
when its user is an admin and it was not issued against a TOTP code. The checks run on every request, so they
hold whatever path changed the user (rfr's pages, the Django admin, a shell); the services also revoke the
tokens explicitly so that the audit trail says when and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken
from accounts.otp import admin_totp_required

DEFAULT_TOKEN_TTL_HOURS = 12
_PASSWORD_CHECK_SALT = "rfr.accounts.api_token.password"

REFUSAL_MESSAGES = {
    "revoked": "This token has been revoked. Request a new one.",
    "expired": "This token has expired. Request a new one.",
    "inactive": "This account is disabled.",
    "password_changed": "The password has changed since this token was issued. Request a new one.",
    "totp_required": "Admins must use a token issued against an authenticator (TOTP) code. Request a new one.",
}

# How a token's state reads on a page ("" is a token that works).
TOKEN_STATES = {
    "": "Valid",
    "revoked": "Revoked",
    "expired": "Expired",
    "inactive": "Refused: account disabled",
    "password_changed": "Refused: password changed since issue",
    "totp_required": "Refused: not issued with an authenticator code",
}


def token_ttl() -> dt.timedelta:
    return dt.timedelta(hours=int(getattr(settings, "RFR_TOKEN_TTL_HOURS", DEFAULT_TOKEN_TTL_HOURS)))


def token_key_hash(key: str) -> str:
    # Keys are 160 random bits, so a plain sha256 cannot be guessed backwards; no salt or slow hash is needed.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def password_check_for(user: Any) -> str:
    """Changes whenever the user's password does (set_password makes a new salted hash)."""
    return salted_hmac(_PASSWORD_CHECK_SALT, user.password or "", algorithm="sha256").hexdigest()


def api_token_refusal(token: ApiToken) -> str:
    """Why `token` may not be used now ("" if it may)."""
    user = token.user
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= timezone.now():
        return "expired"
    if not user.is_active:
        return "inactive"
    if token.password_check != password_check_for(user):
        return "password_changed"
    if not token.totp_verified and admin_totp_required(user):
        return "totp_required"
    return ""


def api_token_find(key: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user").filter(key_hash=token_key_hash(key)).first()


def api_tokens_of(user: Any) -> Any:
    """All of the user's tokens, newest first (revoked and expired ones too), never anyone else's."""
    return ApiToken.objects.select_related("user").filter(user_id=user.pk).order_by("-created_at", "-pk")


def api_tokens_live_for(user: Any) -> Any:
    """The user's tokens not revoked and not expired (some may still be refused, e.g. after a password change)."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now())


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked against the hashed, expiring, revocable tokens of accounts.ApiToken."""

    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token = api_token_find(key)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        refusal = api_token_refusal(token)
        if refusal:
            raise AuthenticationFailed(REFUSAL_MESSAGES[refusal])
        return token.user, token
