"""Teams, and sign-in throttling state (kept in the database so every web process and worker sees the same
lockouts)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LoginFailure(models.Model):
    """One failed sign-in for a (lower-cased) username from one address; old rows no longer count."""

    username = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["username", "ip_address", "created_at"])]

    def __str__(self) -> str:
        return f"{self.username}@{self.ip_address} {self.created_at:%Y-%m-%d %H:%M:%S}"


class LoginLockout(models.Model):
    username = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    locked_until = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["username", "ip_address", "locked_until"])]

    def __str__(self) -> str:
        return f"{self.username}@{self.ip_address} until {self.locked_until:%Y-%m-%d %H:%M:%S}"


class Team(models.Model):
    """A unit of investigators; its supervisors see the cases of the team (cases.permissions)."""

    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    supervisors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="supervised_teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """An API token. Only the sha256 of the key is stored: the key is shown once, when issued, and never again.

    A token works until it expires (RFR_TOKEN_TTL_HOURS), is revoked, its user is deactivated, its user's
    password changes (`password_check` no longer matches), or, while RFR_REQUIRE_ADMIN_TOTP is on, its user is
    an admin and the token was not issued against a TOTP code (accounts.tokens.api_token_refusal).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="The key's first characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    password_check = models.CharField(max_length=64, help_text="HMAC of the password hash at issue.")
    totp_verified = models.BooleanField(default=False, help_text="Issued against a TOTP code.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class PasswordChangeRequired(models.Model):
    """An admin set this user's password (/manage/): the user must choose their own before anything else, so an
    admin who resets a password to sign in as someone cannot do so unnoticed (accounts.middleware)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    set_by_username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user_id} (set by {self.set_by_username})"
