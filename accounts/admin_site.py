"""The Django admin's policy: read-only for everyone but superusers, with no secrets in it.

rfr's own pages (/manage/) are how admins do their weekly work, through the audited services. The stock admin
stays as a read-only window for staff, and as a repair tool for superusers, who exist only through
`manage.py createsuperuser` or a shell (rfr's pages never make one, and the admin cannot tick the flag):

- every model admin registered on this site, whatever app registers it, refuses add, change, delete and bulk
  actions to anyone who is not a superuser (`SuperuserWritesOnly`, mixed in at registration);
- models holding secrets are never registered: API tokens (DRF's and rfr's) and authenticator devices (their
  keys), so not even a superuser can read a token or a TOTP key here;
- each admin view runs inside `accounts.grants.grants_request`, so any grant a superuser makes here (a group, a
  flag, a password, an object permission) is recorded by accounts.signals with their name and address, and a
  refused write (403) is recorded as `grant.refused`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse

from accounts.grants import grants_request
from accounts.services import grant_refusal_record

# Models whose rows are credentials: never shown in the admin, to anyone.
NEVER_IN_ADMIN = frozenset({"authtoken.token", "authtoken.tokenproxy", "accounts.apitoken", "otp_totp.totpdevice"})


def request_is_superuser(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and getattr(user, "is_superuser", False))


class SuperuserWritesOnly:
    """Mixed into every ModelAdmin of the site: writes (and bulk actions) for superusers only."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request_is_superuser(request) and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_is_superuser(request) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_is_superuser(request) and super().has_delete_permission(request, obj)  # type: ignore[misc]

    def get_actions(self, request: HttpRequest) -> Any:
        # Django offers actions without `allowed_permissions` to anyone who may view the list: not here.
        return super().get_actions(request) if request_is_superuser(request) else {}  # type: ignore[misc]


class RfrAdminSite(admin.AdminSite):
    site_header = "rfr administration"
    site_title = "rfr administration"
    index_title = "Read-only for staff; rfr's own pages (Manage) make changes"

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        models: Iterable[Any] = [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        kept = [model for model in models if model._meta.label_lower not in NEVER_IN_ADMIN]
        if not kept:
            return
        base = admin_class or admin.ModelAdmin
        if not issubclass(base, SuperuserWritesOnly):
            base = type(base.__name__, (SuperuserWritesOnly, base), {"__module__": base.__module__})
        super().register(kept, base, **options)

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        def recorded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                with grants_request(request):
                    return inner(request, *args, **kwargs)
            except PermissionDenied:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    # A refused write (a staff member trying to change anything, their own flags included) is
                    # recorded: the admin's own transaction has rolled back by now, this row stays.
                    grant_refusal_record(
                        actor=request.user,
                        reason="admin_read_only",
                        what=f"{request.method} {request.path}",
                        request=request,
                    )
                raise

        return update_wrapper(recorded, inner)
