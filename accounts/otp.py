"""TOTP second factor (django-otp). Optional for everyone; required for admins when RFR_REQUIRE_ADMIN_TOTP."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import user_is_admin


def user_totp_device(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def admin_totp_required(user: Any) -> bool:
    return bool(getattr(settings, "RFR_REQUIRE_ADMIN_TOTP", False)) and user_is_admin(user)


def totp_token_verify(*, device: TOTPDevice, token: str) -> bool:
    token = "".join((token or "").split())
    if not token.isdigit():
        return False
    with transaction.atomic():
        # Locked so that two requests cannot both accept the same code (django-otp refuses reuse via last_t).
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        return bool(locked.verify_token(token))


def user_is_otp_verified(user: Any) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False
