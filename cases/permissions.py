"""Need-to-know on cases, held as django-guardian object permissions.

Who holds what on a case:
- the owner: `view_case` and `search_case` as user object permissions (and the owner always passes
  cases.access checks, even if a row were lost);
- members the owner adds: `view_case` and `search_case` as user object permissions;
- supervisors of the case's team: `view_case` through a per-team group ("rfr-team-<id>-supervisors") that
  holds the permission on every case of that team. The group's users mirror Team.supervisors (kept in step
  by cases.signals), so a supervisor added to the team later sees its existing cases at once and one
  removed loses them, without touching anyone's explicit membership.

Model-level ("global") permissions and superuser status never grant a case: see cases.access.
Everything under a case (probes, faces, searches, candidates, decisions, exports) is checked through its case.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from guardian.models import GroupObjectPermission
from guardian.shortcuts import assign_perm, get_users_with_perms, remove_perm

from accounts.models import Team
from cases.models import Case

VIEW_CASE = "cases.view_case"
SEARCH_CASE = "cases.search_case"
MEMBER_PERMS = (VIEW_CASE, SEARCH_CASE)
SUPERVISOR_PERMS = (VIEW_CASE,)
_TEAM_GROUP_PREFIX = "rfr-team-"


def team_supervisor_group_name(team_id: int) -> str:
    return f"{_TEAM_GROUP_PREFIX}{team_id}-supervisors"


def team_supervisor_group(team: Team) -> Group:
    group, _ = Group.objects.get_or_create(name=team_supervisor_group_name(team.pk))
    return group


def team_supervisors_sync(team: Team) -> None:
    """Make the team's supervisor group hold exactly the team's current supervisors."""
    team_supervisor_group(team).user_set.set(team.supervisors.all())


def case_owner_grant(case: Case) -> None:
    for perm in MEMBER_PERMS:
        assign_perm(perm, case.owner, case)


def case_member_grant(case: Case, user: AbstractBaseUser) -> None:
    for perm in MEMBER_PERMS:
        assign_perm(perm, user, case)


def case_member_revoke(case: Case, user: AbstractBaseUser) -> None:
    for perm in MEMBER_PERMS:
        remove_perm(perm, user, case)


def case_team_permissions_sync(case: Case) -> None:
    """The supervisor group of the case's current team, and no other team's, holds view on the case."""
    stale = GroupObjectPermission.objects.filter(
        object_pk=str(case.pk),
        content_type__app_label="cases",
        content_type__model="case",
        group__name__startswith=_TEAM_GROUP_PREFIX,
    )
    if case.team_id is not None:
        stale = stale.exclude(group__name=team_supervisor_group_name(case.team_id))
    stale.delete()
    if case.team_id is not None:
        group = team_supervisor_group(case.team)  # type: ignore[arg-type]
        for perm in SUPERVISOR_PERMS:
            assign_perm(perm, group, case)


def case_members(case: Case) -> list[Any]:
    """Users added to the case (explicit user permission), the owner excluded, by username."""
    users = get_users_with_perms(case, with_superusers=False, with_group_users=False, only_with_perms_in=["view_case"])
    members: list[Any] = [u for u in users if getattr(u, "pk", None) != case.owner_id]
    return sorted(members, key=lambda u: u.get_username())


def case_member_ids(case: Case) -> set[int]:
    return {user.pk for user in case_members(case)}


def team_supervisors(case: Case) -> list[Any]:
    if case.team_id is None:
        return []
    return list(get_user_model().objects.filter(supervised_teams=case.team_id).order_by("username"))
