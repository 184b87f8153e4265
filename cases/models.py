"""Teams and cases. Who may see a case is held by django-guardian object permissions (see cases.permissions)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    supervisors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="supervised_teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Case(models.Model):
    class Purpose(models.TextChoices):
        SUSPECT = "suspect", "Suspect"
        MISSING = "missing_person", "Missing person"
        DECEASED = "deceased_person", "Deceased person"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    reference = models.CharField(max_length=64, help_text="Crime or incident reference.")
    title = models.CharField(max_length=200)
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    offence_category = models.CharField(max_length=120, blank=True)
    legal_basis = models.TextField(help_text="The lawful basis for searching images in this case.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_cases")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="cases")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("search_case", "Can run searches in the case")]

    def __str__(self) -> str:
        return f"{self.reference} — {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN
