"""When RFR_REQUIRE_ADMIN_TOTP is on, an admin whose session has not passed TOTP can only reach sign-in pages.

Must come after django_otp.middleware.OTPMiddleware, which gives request.user its is_verified().
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.otp import admin_totp_required, user_is_otp_verified

_OPEN_URL_NAMES = ("login", "logout", "totp")


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
        from django.conf import settings

        if path.startswith(settings.STATIC_URL):
            return True
        return any(path == reverse(name) for name in _OPEN_URL_NAMES)
