"""Reads of the audit trail, scoped to who is asking.

Who may read what is held as permissions, so this app needs to know nothing of roles, teams or cases:
- `audit.view_all_auditevent` (admins): every event;
- `audit.view_auditevent` (supervisors): their own events, and whatever the registered scopes add — accounts
  adds the events of the members of the teams they supervise, cases the events on those teams' cases;
- anyone else: none here (people on a case read its timeline, cases.timeline).

Scopes are registered by the apps that know the relationships (`audit_scope_register`, called from their
AppConfig.ready), so the dependency points from them to audit, never back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.actions import AUDIT_ACTION_DESCRIPTIONS, AuditAction
from audit.models import AuditEvent

AnyUser = AbstractBaseUser | AnonymousUser
AuditScope = Callable[[AnyUser], Q]

VIEW_AUDIT = "audit.view_auditevent"
VIEW_ALL_AUDIT = "audit.view_all_auditevent"

_scopes: dict[str, AuditScope] = {}


def audit_scope_register(name: str, scope: AuditScope) -> None:
    """Add the events `scope(user)` selects to what a holder of audit.view_auditevent may read."""
    _scopes[name] = scope


def _holds(user: AnyUser, perm: str) -> bool:
    """Whether an active, signed-in user holds `perm` (through a role group, or as a superuser)."""
    return isinstance(user, PermissionsMixin) and user.is_active and user.has_perm(perm)


def audit_view_allowed(*, user: AnyUser) -> bool:
    return _holds(user, VIEW_AUDIT)


def audit_events_visible_to(*, user: AnyUser) -> QuerySet[AuditEvent]:
    if _holds(user, VIEW_ALL_AUDIT):
        return AuditEvent.objects.all()
    if not _holds(user, VIEW_AUDIT):
        return AuditEvent.objects.none()
    visible = Q(actor=user.pk)
    for scope in _scopes.values():
        visible |= scope(user)
    return AuditEvent.objects.filter(visible)


def audit_events_filter(
    events: QuerySet[AuditEvent],
    *,
    username: str = "",
    case_id: int | None = None,
    action: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    if username:
        events = events.filter(actor_username__iexact=username)
    if case_id is not None:
        events = events.filter(case_id=case_id)
    if action:
        # "case." matches every case action; "case.created" exactly that one.
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    tz = timezone.get_current_timezone()
    if date_from is not None:
        events = events.filter(created_at__gte=dt.datetime.combine(date_from, dt.time.min, tzinfo=tz))
    if date_to is not None:
        events = events.filter(
            created_at__lt=dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        )
    return events.order_by("-seq")


def audit_action_choices() -> list[tuple[str, str]]:
    """(code, what it records) for every action of the vocabulary, for the filter's suggestions."""
    return [(action.value, AUDIT_ACTION_DESCRIPTIONS[action]) for action in AuditAction]
