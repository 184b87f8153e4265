"""Reads of the audit trail, scoped to who is asking.

Admins see every event. Supervisors see events on the cases of the teams they supervise and events by the
members of those teams (and their own). Everyone else sees only case timelines (cases.selectors).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.roles import teams_supervised_by, user_is_admin, user_is_supervisor, users_supervised_by
from audit.models import AuditEvent
from cases.models import Case

AnyUser = AbstractBaseUser | AnonymousUser


def audit_view_allowed(*, user: AnyUser) -> bool:
    return user_is_admin(user) or user_is_supervisor(user)


def audit_events_visible_to(*, user: AnyUser) -> QuerySet[AuditEvent]:
    if user_is_admin(user):
        return AuditEvent.objects.all()
    if not user_is_supervisor(user):
        return AuditEvent.objects.none()
    team_cases = Case.objects.filter(team__in=teams_supervised_by(user)).values("pk")
    members = users_supervised_by(user).values("pk")
    return AuditEvent.objects.filter(Q(case_id__in=team_cases) | Q(actor__in=members) | Q(actor=user.pk))


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


def audit_action_choices() -> list[Any]:
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())
