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
