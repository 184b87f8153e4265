"""Need-to-know: every read of a case, or of anything under it, goes through these fetch helpers.

A case exists, for a user, only if they may view it: anyone else gets Http404 (pages and API alike), so an
outsider cannot even learn that a case id is in use. A user who may view a case but lacks a stronger
permission (e.g. a supervisor asking to search) gets PermissionDenied (403): they already know it exists.
Probes, faces, searches and candidates are reached through their case with the same rule.

`case_access_explain` says, for a case's page and API, who can see the case and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user, get_perms, get_users_with_perms

from audit.actions import AuditAction
from audit.models import AuditEvent
from cases.models import Candidate, Case, Probe, ProbeFace, Search
from cases.permissions import VIEW_CASE, case_members, team_supervisors

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


# --- Who can see a case, and why -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessReason:
    """One person's access to a case: how they hold it, and the grant's audit event where there is one."""

    user_id: int
    username: str
    reason: str  # "owner", "member", "team_supervisor", "group"
    text: str  # the reason in words, for the case page
    can_search: bool
    granted_by: str = ""
    granted_at: datetime | None = None
    audit_seq: int | None = None


def _granted_by(event: AuditEvent) -> str:
    """Who made a grant: the signed-in actor, or what ran it with no one signed in (a command, the demo set-up)."""
    return event.actor_username or str((event.detail or {}).get("by") or "a command run on the server")


def _grant_event(events: list[AuditEvent], user_id: int) -> AuditEvent | None:
    """The latest of `events` that granted to `user_id` (events record the user in `detail["user_id"]`)."""
    found = [event for event in events if (event.detail or {}).get("user_id") == user_id]
    return found[-1] if found else None


def _users_with_perm(case: Case, codename: str) -> list[Any]:
    """Users holding `codename` on the case, as users or through a group (superuser status not counted)."""
    return list(get_users_with_perms(case, with_group_users=True, only_with_perms_in=[codename]))


def case_access_explain(*, case: Case) -> list[AccessReason]:
    """Everyone who can see `case`, each with why: its owner; the members added to it (by whom, when); the
    supervisors of its team (since when); anyone holding the view permission through another group (granted
    outside rfr's services, so recorded as `permission.granted`). Superusers and admins are not listed: roles
    and superuser status never grant a case (cases_visible_to)."""
    reasons: list[AccessReason] = []
    created = AuditEvent.objects.filter(case_id=case.pk, action=AuditAction.CASE_CREATED).order_by("seq").first()
    reasons.append(
        AccessReason(
            user_id=case.owner_id,
            username=case.owner.get_username(),
            reason="owner",
            text="Owner: opened the case",
            can_search=True,
            granted_by=case.owner.get_username(),
            granted_at=created.created_at if created else case.created_at,
            audit_seq=created.seq if created else None,
        )
    )
    added = list(AuditEvent.objects.filter(case_id=case.pk, action=AuditAction.CASE_MEMBER_ADDED).order_by("seq"))
    searchers = {user.pk for user in _users_with_perm(case, "search_case")}
    for member in case_members(case):
        event = _grant_event(added, member.pk)
        reasons.append(
            AccessReason(
                user_id=member.pk,
                username=member.get_username(),
                reason="member",
                text=f"Member, added by {_granted_by(event)}" if event else "Member (granted outside rfr's services)",
                can_search=member.pk in searchers,
                granted_by=_granted_by(event) if event else "",
                granted_at=event.created_at if event else None,
                audit_seq=event.seq if event else None,
            )
        )
    listed = {reason.user_id for reason in reasons}
    if case.team_id is not None:
        supervisor_events = list(
            AuditEvent.objects.filter(
                action=AuditAction.TEAM_SUPERVISOR_ADDED, target_type="accounts.team", target_id=str(case.team_id)
            ).order_by("seq")
        )
        for supervisor in team_supervisors(case):
            if supervisor.pk in listed:
                continue
            event = _grant_event(supervisor_events, supervisor.pk)
            reasons.append(
                AccessReason(
                    user_id=supervisor.pk,
                    username=supervisor.get_username(),
                    reason="team_supervisor",
                    text=f"Supervisor of the team {case.team}"
                    + (f", made so by {_granted_by(event)}" if event else ""),
                    can_search=supervisor.pk in searchers,
                    granted_by=_granted_by(event) if event else "",
                    granted_at=event.created_at if event else None,
                    audit_seq=event.seq if event else None,
                )
            )
            listed.add(supervisor.pk)
    # Anyone else who can see it (a view permission held through some other group, set outside the services).
    others = [user for user in _users_with_perm(case, "view_case") if user.pk not in listed]
    for user in sorted(others, key=lambda u: u.get_username()):
        groups = [group.name for group in user.groups.all() if "view_case" in get_perms(group, case)]
        reasons.append(
            AccessReason(
                user_id=user.pk,
                username=user.get_username(),
                reason="group",
                text=f"Through the group {', '.join(groups)} (granted outside rfr's services)",
                can_search=user.pk in searchers,
            )
        )
    return reasons
