"""Writes for sign-in (failures, lockouts, audit) and for roles and team membership. All audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import LoginFailure, LoginLockout, Team
from accounts.roles import ADMIN, ROLES
from accounts.selectors import (
    login_failure_window,
    login_key,
    login_lockout_active,
    login_lockout_duration,
    login_max_failures,
    request_ip,
)
from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import InvalidInput


def login_failure_record(*, username: str | None, request: HttpRequest | None, reason: str) -> bool:
    """Record a failed sign-in; lock the username+address once the limit is reached. True if now locked."""
    key = login_key(username)
    ip = request_ip(request)
    with transaction.atomic():
        if login_lockout_active(username=username, request=request) is not None:
            # Attempts during a lockout never reach a password check; they are logged but do not extend it.
            audit_event_record(
                action=AuditAction.AUTH_LOGIN_FAILED,
                actor=None,
                request=request,
                detail={"username": key, "reason": "locked_out"},
            )
            return True
        LoginFailure.objects.create(username=key, ip_address=ip)
        audit_event_record(
            action=AuditAction.AUTH_LOGIN_FAILED,
            actor=None,
            request=request,
            detail={"username": key, "reason": reason},
        )
        since = timezone.now() - login_failure_window()
        last_lock = LoginLockout.objects.filter(username=key, ip_address=ip).order_by("-locked_until").first()
        if last_lock is not None and last_lock.locked_until > since:
            since = last_lock.locked_until  # failures before the last lock ended were already punished
        failures = LoginFailure.objects.filter(username=key, ip_address=ip, created_at__gte=since).count()
        if failures < login_max_failures():
            return False
        lockout = LoginLockout.objects.create(
            username=key, ip_address=ip, locked_until=timezone.now() + login_lockout_duration()
        )
        audit_event_record(
            action=AuditAction.AUTH_LOCKOUT,
            actor=None,
            target=lockout,
            request=request,
            detail={"username": key, "failures": failures, "locked_until": lockout.locked_until.isoformat()},
        )
        return True


def login_success_record(
    *,
    user: AbstractBaseUser,
    request: HttpRequest | None,
    action: AuditAction = AuditAction.AUTH_LOGIN,
    detail: dict[str, Any] | None = None,
) -> None:
    with transaction.atomic():
        LoginFailure.objects.filter(username=login_key(user.get_username()), ip_address=request_ip(request)).delete()
        audit_event_record(action=action, actor=user, target=user, request=request, detail=detail or {})


def logout_record(*, user: AbstractBaseUser | None, request: HttpRequest | None) -> None:
    with transaction.atomic():
        audit_event_record(action=AuditAction.AUTH_LOGOUT, actor=user, target=user, request=request)


def totp_device_confirm(*, device: TOTPDevice, user: AbstractBaseUser, request: HttpRequest | None) -> None:
    """Record a session verified with the user's authenticator app; a device's first good code also confirms
    the device (enrolment)."""
    enrolling = not device.confirmed
    with transaction.atomic():
        if enrolling:
            TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
            device.confirmed = True
        action = AuditAction.AUTH_TOTP_ENROLLED if enrolling else AuditAction.AUTH_TOTP_VERIFIED
        audit_event_record(action=action, actor=user, target=user, request=request)


def user_role_grant(
    *,
    user: AbstractBaseUser,
    role: str,
    granted_by: AbstractBaseUser | None,
    request: HttpRequest | None = None,
) -> None:
    if role not in ROLES:
        raise InvalidInput("unknown_role", f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
    with transaction.atomic():
        user.groups.add(Group.objects.get(name=role))  # type: ignore[attr-defined]
        if role == ADMIN:
            get_user_model().objects.filter(pk=user.pk).update(is_staff=True)  # the admin site needs staff
            user.is_staff = True  # type: ignore[attr-defined]
        audit_event_record(
            action=AuditAction.ROLE_GRANTED, actor=granted_by, target=user, request=request, detail={"role": role}
        )


def _team_relation_change(
    *,
    team: Team,
    relation: str,
    user: AbstractBaseUser,
    add: bool,
    action: AuditAction,
    by: AbstractBaseUser | None,
    request: HttpRequest | None,
) -> None:
    """Add `user` to, or remove them from, one of the team's user lists ("members" or "supervisors"), with
    its audit event, in one transaction. cases.signals keeps the supervisors' view of the team's cases in step."""
    with transaction.atomic():
        people = getattr(team, relation)
        if add:
            people.add(user)
        else:
            people.remove(user)
        audit_event_record(action=action, actor=by, target=team, request=request, detail={"user_id": user.pk})


def team_member_add(
    *, team: Team, user: AbstractBaseUser, added_by: AbstractBaseUser | None, request: HttpRequest | None = None
) -> None:
    _team_relation_change(
        team=team,
        relation="members",
        user=user,
        add=True,
        action=AuditAction.TEAM_MEMBER_ADDED,
        by=added_by,
        request=request,
    )


def team_member_remove(
    *, team: Team, user: AbstractBaseUser, removed_by: AbstractBaseUser | None, request: HttpRequest | None = None
) -> None:
    _team_relation_change(
        team=team,
        relation="members",
        user=user,
        add=False,
        action=AuditAction.TEAM_MEMBER_REMOVED,
        by=removed_by,
        request=request,
    )


def team_supervisor_add(
    *, team: Team, user: AbstractBaseUser, added_by: AbstractBaseUser | None, request: HttpRequest | None = None
) -> None:
    """Make `user` a supervisor of `team`; they see all of the team's cases, present and future."""
    _team_relation_change(
        team=team,
        relation="supervisors",
        user=user,
        add=True,
        action=AuditAction.TEAM_SUPERVISOR_ADDED,
        by=added_by,
        request=request,
    )


def team_supervisor_remove(
    *, team: Team, user: AbstractBaseUser, removed_by: AbstractBaseUser | None, request: HttpRequest | None = None
) -> None:
    _team_relation_change(
        team=team,
        relation="supervisors",
        user=user,
        add=False,
        action=AuditAction.TEAM_SUPERVISOR_REMOVED,
        by=removed_by,
        request=request,
    )


def team_create(*, name: str, created_by: AbstractBaseUser | None, by: str = "") -> Team:
    """Create a team (or return the existing one of that name, auditing nothing)."""
    with transaction.atomic():
        team, created = Team.objects.get_or_create(name=name)
        if created:
            detail = {"name": team.name, **({"by": by} if by else {})}
            audit_event_record(action=AuditAction.TEAM_CREATED, actor=created_by, target=team, detail=detail)
    return team


def user_create(
    *,
    username: str,
    password: str,
    created_by: AbstractBaseUser | None,
    first_name: str = "",
    last_name: str = "",
    role: str = "",
    by: str = "",
) -> AbstractBaseUser:
    """Create a user account, with its audit event; `role`, if given, is noted (grant it with user_role_grant)."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, password=password, first_name=first_name, last_name=last_name
        )
        detail = {"username": username, **({"role": role} if role else {}), **({"by": by} if by else {})}
        audit_event_record(action=AuditAction.USER_CREATED, actor=created_by, target=user, detail=detail)
    return user


def user_password_set(*, user: AbstractBaseUser, password: str, set_by: AbstractBaseUser | None, by: str = "") -> None:
    """Set a user's password on someone else's authority (an admin, the demo set-up), audited."""
    with transaction.atomic():
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        detail = {"username": locked.get_username(), **({"by": by} if by else {})}
        audit_event_record(action=AuditAction.USER_PASSWORD_RESET, actor=set_by, target=locked, detail=detail)
