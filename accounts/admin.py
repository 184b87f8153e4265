"""The user admin, under the site policy of accounts.admin_site (writes for superusers only).

Nobody makes a superuser here (the flag is read-only: `manage.py createsuperuser` or a shell only), nobody
changes their own flags, groups or permissions, and the groups offered are the roles only: a team's supervisor
group follows Team.supervisors (cases.signals) and is never edited by hand. Every change is recorded in the
audit trail by accounts.signals.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts.roles import ROLES

User = get_user_model()

_ALWAYS_READ_ONLY = ("is_superuser", "user_permissions", "last_login", "date_joined")
_OWN_READ_ONLY = ("is_active", "is_staff", "groups")


class RfrUserAdmin(UserAdmin):
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [*super().get_readonly_fields(request, obj), *_ALWAYS_READ_ONLY]
        if obj is not None and obj.pk == getattr(request.user, "pk", None):
            fields.extend(_OWN_READ_ONLY)
        return fields

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups":
            kwargs["queryset"] = Group.objects.filter(name__in=ROLES)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, RfrUserAdmin)
