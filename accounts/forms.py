from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.otp import totp_token_verify, user_totp_device
from accounts.roles import ROLES
from accounts.selectors import login_lockout_active
from accounts.services import login_failure_record


class LoginForm(AuthenticationForm):
    """Username, password and, for accounts with an authenticator app, its 6-digit code."""

    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=12,
        help_text="Only if you have set up an authenticator app.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "otp_invalid": "Enter the current 6-digit code from your authenticator app.",
    }

    def get_invalid_login_error(self) -> forms.ValidationError:
        if login_lockout_active(username=self.cleaned_data.get("username"), request=self.request) is not None:
            return forms.ValidationError(
                "Too many failed sign-in attempts from here. Wait 15 minutes, then try again.", code="locked"
            )
        return super().get_invalid_login_error()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # authenticate(): failures and lockouts are recorded by accounts.signals
        user = self.get_user()
        if user is None:
            return cleaned
        device = user_totp_device(user)
        if device is not None:
            if not totp_token_verify(device=device, token=cleaned.get("otp_token") or ""):
                login_failure_record(username=user.get_username(), request=self.request, reason="otp_invalid")
                raise forms.ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")
            user.otp_device = device  # type: ignore[attr-defined]  # django-otp marks the session verified
        return cleaned


class TOTPConfirmForm(forms.Form):
    otp_token = forms.CharField(
        label="Code from your authenticator app",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


# --- rfr's admin pages (/manage/) --------------------------------------------------------------------------------

ROLE_CHOICES = [("", "No role yet"), *[(role, role.capitalize()) for role in ROLES]]


class _PasswordPair(forms.Form):
    password1 = forms.CharField(
        label="New password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters; not a common password, not all digits, not like the username.",
    )
    password2 = forms.CharField(
        label="New password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class UserCreateForm(_PasswordPair):
    field_order = ["username", "first_name", "last_name", "email", "role", "password1", "password2"]
    username = forms.CharField(label="Username", max_length=150)
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    email = forms.EmailField(label="Email", required=False)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, required=False)


class PasswordResetForm(_PasswordPair):
    pass


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=[(role, role.capitalize()) for role in ROLES])


class DeactivateForm(forms.Form):
    reason = forms.CharField(label="Reason for deactivating", max_length=500, required=False)


class TeamCreateForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=120)


class TeamPersonForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    relation = forms.ChoiceField(label="As", choices=[("members", "Member"), ("supervisors", "Supervisor")])
