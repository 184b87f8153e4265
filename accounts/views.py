from __future__ import annotations

import io
from typing import Any

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.qr import write_qrcode_image

from accounts.forms import LoginForm, TOTPConfirmForm
from accounts.models import ApiToken
from accounts.otp import totp_token_verify, user_is_otp_verified, user_totp_device
from accounts.selectors import password_change_required
from accounts.services import (
    api_tokens_revoke,
    login_failure_record,
    totp_device_confirm,
    totp_device_create,
    user_password_set,
)
from accounts.tokens import TOKEN_STATES, api_token_refusal, token_ttl


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@login_required
def totp(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app (first visit), or verify this session with it (an enrolled user)."""
    device = user_totp_device(request.user)
    enrolling = device is None
    if enrolling:
        device = TOTPDevice.objects.filter(user=request.user, confirmed=False).order_by("pk").first()
        if device is None:
            device = totp_device_create(user=request.user, request=request)  # type: ignore[arg-type]
    assert device is not None
    if not enrolling and user_is_otp_verified(request.user):
        messages.info(request, "This session is already verified with your authenticator app.")
        return redirect(_safe_next(request))
    form = TOTPConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if totp_token_verify(device=device, token=form.cleaned_data["otp_token"]):
            totp_device_confirm(device=device, user=request.user, request=request)  # type: ignore[arg-type]
            otp_login(request, device)
            return redirect(_safe_next(request))
        login_failure_record(username=request.user.get_username(), request=request, reason="otp_invalid")
        form.add_error("otp_token", "That code was not accepted. Enter the current 6-digit code.")
    qr_svg = ""
    if enrolling:
        buffer = io.BytesIO()
        write_qrcode_image(device.config_url, buffer)
        qr_svg = buffer.getvalue().decode("utf-8")
    return render(
        request,
        "accounts/totp.html",
        {
            "form": form,
            "enrolling": enrolling,
            "qr_svg": qr_svg,
            "config_url": device.config_url if enrolling else "",
            "next": _safe_next(request),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """One's own API tokens: when issued and until when, never the key (only its hash is kept); revoke one or all."""
    user: Any = request.user
    if request.method == "POST":
        token_id = request.POST.get("revoke", "")
        token_ids = [int(token_id)] if token_id.isdigit() else None
        revoked = api_tokens_revoke(
            user=user, revoked_by=user, reason="revoked_by_owner", token_ids=token_ids, request=request
        )
        messages.success(request, f"Revoked {revoked} token{'s' if revoked != 1 else ''}.")
        return redirect("api-tokens")
    tokens = [
        (token, TOKEN_STATES[api_token_refusal(token)]) for token in ApiToken.objects.filter(user_id=user.pk)[:50]
    ]
    return render(
        request,
        "accounts/api_tokens.html",
        {"tokens": tokens, "ttl_hours": int(token_ttl().total_seconds() // 3600)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """Choose one's own password (the old one is asked for): required after an admin has set it. Ends every API
    token of the account (accounts.services.user_password_set)."""
    user: Any = request.user
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user_password_set(user=user, password=form.cleaned_data["new_password1"], set_by=user, request=request)
        update_session_auth_hash(request, user)  # stay signed in on this session; others end
        messages.success(request, "Your password has been changed.")
        return redirect(_safe_next(request))
    return render(
        request,
        "accounts/password_change.html",
        {"form": form, "required": password_change_required(user), "next": _safe_next(request)},
        status=400 if request.method == "POST" else 200,
    )
