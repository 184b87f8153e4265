"""When RFR_REQUIRE_ADMIN_TOTP is on, an admin whose session has not passed TOTP can only reach sign-in pages;
a user whose password an admin set can only reach the page to choose their own.

Must come after django_otp.middleware.OTPMiddleware, which gives request.user its is_verified().
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.otp import admin_totp_required, user_is_otp_verified
from accounts.selectors import password_change_required

_OPEN_URL_NAMES = ("login", "logout", "totp", "password-change")


class AdminTOTPRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and admin_totp_required(user)
            and not user_is_otp_verified(user)
            and not self._is_open(request.path)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {"detail": "Admins must set up and use an authenticator app (TOTP) first."},
                    status=403,
                )
            return redirect(f"{reverse('totp')}?next={request.path}")
        return self.get_response(request)

    @staticmethod
    def _is_open(path: str) -> bool:
        if path.startswith(settings.STATIC_URL):
            return True
        return any(path == reverse(name) for name in _OPEN_URL_NAMES)


_PASSWORD_OPEN_URL_NAMES = ("login", "logout", "password-change")


class PasswordChangeRequiredMiddleware:
    """A user whose password an admin set (accounts.models.PasswordChangeRequired) reaches only the page to choose
    their own, sign-out and sign-in, until they have: the API answers 403 `password_change_required`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(settings.STATIC_URL)
            and not any(request.path == reverse(name) for name in _PASSWORD_OPEN_URL_NAMES)
            and password_change_required(user)
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "error": "password_change_required",
                        "message": "An admin set your password: choose your own on the web first.",
                    },
                    status=403,
                )
            return redirect(f"{reverse('password-change')}?next={request.path}")
        return self.get_response(request)
