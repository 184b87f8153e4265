"""Roles (Django groups created by migration accounts/0001) and team relationships, read-only helpers.

- investigator: works cases they own or are added to.
- supervisor: sees the cases of the teams they supervise (accounts.models.Team.supervisors) and the audit trail of
  those teams' members and cases.
- admin: manages users, teams, galleries and settings, and sees the whole audit trail, but sees no case
  content unless added to a case (separation of duties: case visibility ignores superuser and model-level
  permissions, see cases.access).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.db.models import QuerySet

from accounts.grants import grants_recorded
from accounts.models import Team

INVESTIGATOR = "investigator"
SUPERVISOR = "supervisor"
ADMIN = "admin"
ROLES = (INVESTIGATOR, SUPERVISOR, ADMIN)

# Model-level permissions each role's group holds. Case access is NEVER given here: it is per object.
ROLE_MODEL_PERMISSIONS: dict[str, list[str]] = {
    INVESTIGATOR: [],
    SUPERVISOR: ["audit.view_auditevent", "accounts.view_team"],
    ADMIN: [
        "auth.add_user",
        "auth.change_user",
        "auth.view_user",
        "auth.view_group",
        "audit.view_auditevent",
        "audit.view_all_auditevent",
        "accounts.add_team",
        "accounts.change_team",
        "accounts.view_team",
        "search.view_gallery",
        "search.add_gallery",
        "search.change_gallery",
        "search.view_subject",
        "search.change_subject",
        "search.delete_subject",
        "search.view_galleryimage",
        "search.add_galleryimage",
        "search.delete_galleryimage",
        "search.view_enrolmentrun",
    ],
}

AnyUser = AbstractBaseUser | AnonymousUser


def user_has_role(user: AnyUser, role: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return Group.objects.filter(name=role, user=user.pk).exists()


def user_is_admin(user: AnyUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return bool(getattr(user, "is_superuser", False)) or user_has_role(user, ADMIN)


def teams_supervised_by(user: AnyUser) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(supervisors=user.pk)


def users_supervised_by(user: AnyUser) -> QuerySet[Any]:
    """Members of the teams the user supervises (the user is not included unless a member)."""
    return get_user_model().objects.filter(teams__in=teams_supervised_by(user)).distinct()


def role_model_permissions_sync(**kwargs: Any) -> None:
    """post_migrate: give each role group its model permissions (permissions exist only after migrate). These
    are the roles' definition, in this file under version control, so they are not recorded as grants."""
    with grants_recorded():
        _role_model_permissions_sync()


def _role_model_permissions_sync() -> None:
    for role, codes in ROLE_MODEL_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for code in codes:
            app_label, codename = code.split(".", 1)
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                group.permissions.add(permission)
