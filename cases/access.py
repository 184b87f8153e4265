"""Need-to-know: every read of a case, or of anything under it, goes through these fetch helpers.

A case exists, for a user, only if they may view it: anyone else gets Http404 (pages and API alike), so an
outsider cannot even learn that a case id is in use. A user who may view a case but lacks a stronger
permission (e.g. a supervisor asking to search) gets PermissionDenied (403): they already know it exists.
Probes, faces, searches and candidates are reached through their case with the same rule.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from cases.models import Candidate, Case, Probe, ProbeFace, Search
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


def case_ids_supervised_by(*, user: AnyUser) -> QuerySet[Case, Any]:
    """Ids of the cases of the teams `user` supervises (for the audit trail's supervisor scope)."""
    if not user.is_authenticated:
        return Case.objects.none()
    return Case.objects.filter(team__supervisors=user.pk).values("pk")


def probe_get_for_user(*, user: AnyUser, probe_id: int, perm: str = VIEW_CASE) -> Probe:
    probe = Probe.objects.select_related("case", "uploaded_by").filter(pk=probe_id).first()
    if probe is None:
        raise Http404("No such probe.")
    probe.case = case_get_for_user(user=user, case_id=probe.case_id, perm=perm)
    return probe


def face_get_for_user(*, user: AnyUser, face_id: int, perm: str = VIEW_CASE) -> ProbeFace:
    face = ProbeFace.objects.select_related("probe", "probe__case").filter(pk=face_id).first()
    if face is None:
        raise Http404("No such face.")
    face.probe.case = case_get_for_user(user=user, case_id=face.probe.case_id, perm=perm)
    return face


def search_get_for_user(*, user: AnyUser, search_id: int, perm: str = VIEW_CASE) -> Search:
    search = Search.objects.select_related("case", "face", "face__probe", "requested_by").filter(pk=search_id).first()
    if search is None:
        raise Http404("No such search.")
    search.case = case_get_for_user(user=user, case_id=search.case_id, perm=perm)
    return search


def candidate_get_for_user(*, user: AnyUser, candidate_id: int, perm: str = VIEW_CASE) -> Candidate:
    candidate = (
        Candidate.objects.select_related("search", "search__case", "search__face", "search__face__probe")
        .filter(pk=candidate_id)
        .first()
    )
    if candidate is None:
        raise Http404("No such candidate.")
    candidate.search.case = case_get_for_user(user=user, case_id=candidate.search.case_id, perm=perm)
    return candidate
