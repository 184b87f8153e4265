"""A small organisation for permission tests: two teams, their supervisors, an admin and one case.

owner        investigator in team A, owns the case (team A)
member       investigator in team B, added to the case by the owner
supervisor   supervises team A                       -> sees the case
other_sup    supervises team B (where member is)     -> does not see the case
admin        superuser + admin role                  -> does not see the case (separation of duties)
outsider     investigator in team A, not added       -> does not see the case
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from accounts.roles import ADMIN, INVESTIGATOR, SUPERVISOR
from accounts.services import team_member_add, team_supervisor_add, user_role_grant
from cases.models import Case, Team
from cases.services import case_create, case_member_add

PASSWORD = "correct horse battery staple 42"
ROLES = ("owner", "member", "supervisor", "other_sup", "admin", "outsider")


def make_user(username: str, *, role: str | None = INVESTIGATOR, superuser: bool = False) -> Any:
    User = get_user_model()
    if superuser:
        user = User.objects.create_superuser(username=username, password=PASSWORD, email=f"{username}@example.org")
    else:
        user = User.objects.create_user(username=username, password=PASSWORD)
    if role is not None:
        user_role_grant(user=user, role=role, granted_by=None)
    return user


@dataclass
class CaseWorld:
    users: dict[str, Any]
    team_a: Team
    team_b: Team
    case: Case
    extra: dict[str, Any] = field(default_factory=dict)  # objects under the case, for rows that need them


def build_case_world() -> CaseWorld:
    users = {
        "owner": make_user("owner"),
        "member": make_user("member"),
        "supervisor": make_user("supervisor", role=SUPERVISOR),
        "other_sup": make_user("other_sup", role=SUPERVISOR),
        "admin": make_user("admin", role=ADMIN, superuser=True),
        "outsider": make_user("outsider"),
    }
    team_a = Team.objects.create(name="Team A")
    team_b = Team.objects.create(name="Team B")
    team_member_add(team=team_a, user=users["owner"], added_by=users["admin"])
    team_member_add(team=team_a, user=users["outsider"], added_by=users["admin"])
    team_member_add(team=team_b, user=users["member"], added_by=users["admin"])
    team_supervisor_add(team=team_a, user=users["supervisor"], added_by=users["admin"])
    team_supervisor_add(team=team_b, user=users["other_sup"], added_by=users["admin"])
    case = case_create(
        owner=users["owner"],
        reference="OP-REDWOOD/1",
        title="Redwood street robbery",
        purpose=Case.Purpose.SUSPECT,
        offence_category="Robbery",
        legal_basis="Prevention and detection of crime; authorised by DI Example.",
        team=team_a,
    )
    case_member_add(case=case, user=users["member"], added_by=users["owner"])
    return CaseWorld(users=users, team_a=team_a, team_b=team_b, case=case)
