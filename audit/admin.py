"""Read-only admin for the audit trail: list, filter and inspect; never add, change or delete.

An event's detail reads as on /audit/: case content only to people on the case (audit.selectors).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.selectors import audit_events_for_reader


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "created_at", "actor_username", "action", "target_type", "target_id", "case_id"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_username", "action", "target_id", "=case_id"]
    date_hierarchy = "created_at"
    ordering = ["-seq"]
    actions = None  # no bulk delete
    list_select_related = False

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        event = super().get_object(request, object_id, from_field)
        if event is not None:
            audit_events_for_reader(events=[event], viewer=request.user)
        return event

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
