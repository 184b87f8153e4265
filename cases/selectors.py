"""Reads of cases, always through the need-to-know check.

A case exists, for a user, only if they may view it: anyone else gets Http404 (pages and API alike), so an
outsider cannot even learn that a case id is in use. A user who may view a case but lacks a stronger
permission (e.g. a supervisor asking to search) gets PermissionDenied (403): they already know it exists.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from audit.models import AuditEvent
from cases.models import Case
from cases.permissions import VIEW_CASE

AnyUser = AbstractBaseUser | AnonymousUser


def cases_visible_to(*, user: AnyUser, perm: str = VIEW_CASE) -> QuerySet[Case]:
    """Cases on which `user` holds `perm`: as owner, as an added member, or as a supervisor of the team.

    Superuser status and model-level permissions are deliberately ignored (separation of duties: an admin
    sees no case content unless added to the case).
    """
    if not user.is_authenticated or not user.is_active:
        return Case.objects.none()
    granted = get_objects_for_user(
        user, perm, klass=Case, use_groups=True, with_superuser=False, accept_global_perms=False
    )
    return Case.objects.filter(Q(pk__in=granted.values("pk")) | Q(owner=user)).select_related("owner", "team")


def case_get_for_user(*, user: AnyUser, case_id: int, perm: str = VIEW_CASE) -> Case:
    """The case, if `user` holds `perm` on it. Http404 if they cannot view it; PermissionDenied if they can
    view it but lack `perm`."""
    case = cases_visible_to(user=user, perm=VIEW_CASE).filter(pk=case_id).first()
    if case is None:
        raise Http404("No such case.")
    if perm != VIEW_CASE and not cases_visible_to(user=user, perm=perm).filter(pk=case_id).exists():
        raise PermissionDenied("You may view this case but not do that.")
    return case


def case_user_may(*, user: AnyUser, case: Case, perm: str) -> bool:
    return cases_visible_to(user=user, perm=perm).filter(pk=case.pk).exists()


def case_audit_events(*, case: Case) -> QuerySet[AuditEvent]:
    """The case's timeline, newest first. The caller must already have checked the user may view the case."""
    return AuditEvent.objects.filter(case_id=case.pk).order_by("-seq")
