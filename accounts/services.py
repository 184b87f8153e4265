"""Writes for sign-in (failures, lockouts, audit) and for every grant: accounts, roles, teams, passwords, API
tokens and authenticator apps. All audited, each change with its audit row in one transaction.

Grants made through these services are recorded here, with their actor; the same changes made another way
(the Django admin, a shell) are recorded by the receivers in accounts.signals through the `*_record` services at
the end of this module (accounts.grants keeps the two from recording one change twice). Nobody changes their
own roles, staff or superuser flags or supervision here, and nothing here makes a superuser: superusers are
made only with `manage.py createsuperuser` or a shell, and even that is recorded.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.grants import grants_recorded
from accounts.models import ApiToken, LoginFailure, LoginLockout, PasswordChangeRequired, Team
from accounts.roles import ADMIN, ROLES
from accounts.selectors import (
    login_failure_window,
    login_key,
    login_lockout_active,
    login_lockout_duration,
    login_max_failures,
    request_ip,
)
from accounts.tokens import password_check_for, token_key_hash, token_ttl
from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import Conflict, Forbidden, InvalidInput

Actor = AbstractBaseUser | AnonymousUser | None


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


def totp_device_create(*, user: AbstractBaseUser, request: HttpRequest | None = None) -> TOTPDevice:
    """A new, unconfirmed authenticator app for `user` (it counts only once confirmed with a good code)."""
    with transaction.atomic(), grants_recorded():
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
        audit_event_record(action=AuditAction.AUTH_TOTP_DEVICE_ADDED, actor=user, target=user, request=request)
    return device


def totp_device_confirm(*, device: TOTPDevice, user: AbstractBaseUser, request: HttpRequest | None) -> None:
    """Record a session verified with the user's authenticator app; a device's first good code also confirms
    the device (enrolment)."""
    enrolling = not device.confirmed
    with transaction.atomic(), grants_recorded():
        if enrolling:
            TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
            device.confirmed = True
        action = AuditAction.AUTH_TOTP_ENROLLED if enrolling else AuditAction.AUTH_TOTP_VERIFIED
        audit_event_record(action=action, actor=user, target=user, request=request)


def totp_devices_remove(*, user: AbstractBaseUser, removed_by: Actor, request: HttpRequest | None = None) -> int:
    """Remove every authenticator app of `user` (a lost phone); they set up a new one at next sign-in."""
    with transaction.atomic(), grants_recorded():
        removed, _ = TOTPDevice.objects.filter(user=user).delete()
        audit_event_record(
            action=AuditAction.AUTH_TOTP_REMOVED,
            actor=removed_by,
            target=user,
            request=request,
            detail={"username": user.get_username(), "devices": removed},
        )
    return removed


# --- API tokens -------------------------------------------------------------------------------------------------


def api_token_issue(
    *, user: AbstractBaseUser, totp_verified: bool, request: HttpRequest | None = None
) -> tuple[str, ApiToken]:
    """A new API token for `user`: (the key, shown to the caller once and stored only as its hash; the row)."""
    key = secrets.token_hex(20)
    with transaction.atomic(), grants_recorded():
        LoginFailure.objects.filter(username=login_key(user.get_username()), ip_address=request_ip(request)).delete()
        token = ApiToken.objects.create(
            user_id=user.pk,
            key_hash=token_key_hash(key),
            prefix=key[:8],
            expires_at=timezone.now() + token_ttl(),
            password_check=password_check_for(user),
            totp_verified=totp_verified,
        )
        audit_event_record(
            action=AuditAction.AUTH_TOKEN_OBTAINED,
            actor=user,
            target=user,
            request=request,
            detail={
                "new": True,
                "token": token.prefix,
                "expires_at": token.expires_at.isoformat(),
                "totp": totp_verified,
            },
        )
    return key, token


def _tokens_revoke(*, tokens: QuerySet[ApiToken], reason: str) -> list[str]:
    live = list(tokens.filter(revoked_at__isnull=True).values_list("pk", "prefix"))
    ApiToken.objects.filter(pk__in=[pk for pk, _ in live]).update(revoked_at=timezone.now(), revoked_reason=reason)
    return [prefix for _, prefix in live]


def api_tokens_revoke(
    *,
    user: AbstractBaseUser,
    revoked_by: Actor,
    reason: str,
    token_ids: Iterable[int] | None = None,
    request: HttpRequest | None = None,
    record_none: bool = True,
) -> int:
    """Revoke `user`'s tokens (all of them, or those of `token_ids`); how many were live. Revoking someone
    else's tokens is for admins: callers check that (the owner may always revoke their own)."""
    with transaction.atomic(), grants_recorded():
        tokens = ApiToken.objects.select_for_update().filter(user_id=user.pk)
        if token_ids is not None:
            tokens = tokens.filter(pk__in=list(token_ids))
        prefixes = _tokens_revoke(tokens=tokens, reason=reason)
        if prefixes or record_none:
            audit_event_record(
                action=AuditAction.AUTH_TOKEN_REVOKED,
                actor=revoked_by,
                target=user,
                request=request,
                detail={"username": user.get_username(), "tokens": prefixes, "reason": reason},
            )
    return len(prefixes)


def api_token_rotate(*, token: ApiToken, request: HttpRequest | None = None) -> tuple[str, ApiToken]:
    """A new key in place of `token`, which is revoked in the same transaction (reason `rotated`): (the new key,
    shown once; its row). The new token keeps the old one's expiry and TOTP standing, so that rotating renews
    the secret, never the lifetime: a key taken from a client cannot be kept alive by rotating it."""
    key = secrets.token_hex(20)
    with transaction.atomic(), grants_recorded():
        old = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if old.revoked_at is not None:
            raise Conflict("token_revoked", "This token has already been revoked or rotated. Request a new one.")
        user = old.user
        _tokens_revoke(tokens=ApiToken.objects.filter(pk=old.pk), reason="rotated")
        new = ApiToken.objects.create(
            user_id=user.pk,
            key_hash=token_key_hash(key),
            prefix=key[:8],
            expires_at=old.expires_at,
            password_check=password_check_for(user),
            totp_verified=old.totp_verified,
        )
        audit_event_record(
            action=AuditAction.AUTH_TOKEN_ROTATED,
            actor=user,
            target=user,
            request=request,
            detail={
                "username": user.get_username(),
                "revoked": old.prefix,
                "token": new.prefix,
                "expires_at": new.expires_at.isoformat(),
                "totp": new.totp_verified,
            },
        )
    return key, new


# --- Users, roles and teams ------------------------------------------------------------------------------------


def grant_refusal_record(
    *, actor: Actor, reason: str, what: str, target: Any = None, request: HttpRequest | None = None
) -> None:
    """An attempt to change grants that was refused: recorded in its own transaction, so that it stays when the
    refused change is rolled back."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.GRANT_REFUSED,
            actor=actor,
            target=target,
            request=request,
            detail={"reason": reason, "what": what[:200]},
        )


def _refuse_self(*, user: AbstractBaseUser, by: Actor, doing: str, request: HttpRequest | None = None) -> None:
    """Nobody changes their own grants: another admin must (separation of duties). The attempt is recorded."""
    if by is not None and getattr(by, "pk", None) is not None and by.pk == user.pk:
        grant_refusal_record(actor=by, reason="self_change", what=doing, target=user, request=request)
        raise Forbidden("self_change", f"You cannot {doing} on your own account; ask another admin.")


def user_role_grant(
    *,
    user: AbstractBaseUser,
    role: str,
    granted_by: Actor,
    request: HttpRequest | None = None,
) -> None:
    if role not in ROLES:
        raise InvalidInput("unknown_role", f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
    _refuse_self(user=user, by=granted_by, doing="grant a role", request=request)
    with transaction.atomic(), grants_recorded():
        user.groups.add(Group.objects.get(name=role))  # type: ignore[attr-defined]
        detail: dict[str, Any] = {"role": role}
        if role == ADMIN and not getattr(user, "is_staff", False):
            get_user_model().objects.filter(pk=user.pk).update(is_staff=True)  # the admin site needs staff
            user.is_staff = True  # type: ignore[attr-defined]
            detail["is_staff"] = True
        audit_event_record(
            action=AuditAction.ROLE_GRANTED, actor=granted_by, target=user, request=request, detail=detail
        )


def user_role_revoke(
    *,
    user: AbstractBaseUser,
    role: str,
    revoked_by: Actor,
    request: HttpRequest | None = None,
) -> None:
    if role not in ROLES:
        raise InvalidInput("unknown_role", f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
    _refuse_self(user=user, by=revoked_by, doing="take away a role", request=request)
    if not user.groups.filter(name=role).exists():  # type: ignore[attr-defined]
        raise Conflict("role_not_held", f"{user.get_username()} does not hold the role {role}.")
    with transaction.atomic(), grants_recorded():
        user.groups.remove(Group.objects.get(name=role))  # type: ignore[attr-defined]
        detail: dict[str, Any] = {"role": role}
        if role == ADMIN and getattr(user, "is_staff", False) and not getattr(user, "is_superuser", False):
            get_user_model().objects.filter(pk=user.pk).update(is_staff=False)
            user.is_staff = False  # type: ignore[attr-defined]
            detail["is_staff"] = False
        audit_event_record(
            action=AuditAction.ROLE_REVOKED, actor=revoked_by, target=user, request=request, detail=detail
        )


def _team_relation_change(
    *,
    team: Team,
    relation: str,
    user: AbstractBaseUser,
    add: bool,
    action: AuditAction,
    by: Actor,
    request: HttpRequest | None,
) -> None:
    """Add `user` to, or remove them from, one of the team's user lists ("members" or "supervisors"), with
    its audit event, in one transaction. cases.signals keeps the supervisors' view of the team's cases in step."""
    if relation == "supervisors":
        _refuse_self(user=user, by=by, doing="change who supervises a team", request=request)
    with transaction.atomic(), grants_recorded():
        people = getattr(team, relation)
        if add:
            people.add(user)
        else:
            people.remove(user)
        detail = {"user_id": user.pk, "username": user.get_username()}
        audit_event_record(action=action, actor=by, target=team, request=request, detail=detail)


def team_member_add(*, team: Team, user: AbstractBaseUser, added_by: Actor, request: HttpRequest | None = None) -> None:
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
    *, team: Team, user: AbstractBaseUser, removed_by: Actor, request: HttpRequest | None = None
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
    *, team: Team, user: AbstractBaseUser, added_by: Actor, request: HttpRequest | None = None
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
    *, team: Team, user: AbstractBaseUser, removed_by: Actor, request: HttpRequest | None = None
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


def team_create(*, name: str, created_by: Actor, by: str = "", request: HttpRequest | None = None) -> Team:
    """Create a team (or return the existing one of that name, auditing nothing)."""
    name = name.strip()
    if not name:
        raise InvalidInput("name_required", "A team needs a name.", fields={"name": ["A team needs a name."]})
    with transaction.atomic():
        team, created = Team.objects.get_or_create(name=name)
        if created:
            detail = {"name": team.name, **({"by": by} if by else {})}
            audit_event_record(
                action=AuditAction.TEAM_CREATED, actor=created_by, target=team, request=request, detail=detail
            )
    return team


def _password_validate(password: str, user: Any) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput(
            "weak_password", " ".join(error.messages), fields={"password": list(error.messages)}
        ) from error


def user_create(
    *,
    username: str,
    password: str,
    created_by: Actor,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    role: str = "",
    by: str = "",
    request: HttpRequest | None = None,
    validate: bool = False,
    require_change: bool = False,
) -> AbstractBaseUser:
    """Create a user account, with its audit event; `role`, if given, is noted (grant it with user_role_grant).
    `validate` applies the password rules (rfr's pages do; the demo set-up chooses its own passwords), and
    `require_change` makes the new user choose their own password at first sign-in (rfr's pages)."""
    username = username.strip()
    if not username:
        raise InvalidInput("username_required", "Enter a username.", fields={"username": ["Enter a username."]})
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        message = f"The username {username} is taken."
        raise Conflict("username_taken", message, fields={"username": [message]})
    if validate:
        _password_validate(password, User(username=username, first_name=first_name, last_name=last_name, email=email))
    with transaction.atomic(), grants_recorded():
        user = User.objects.create_user(
            username=username, password=password, first_name=first_name, last_name=last_name, email=email
        )
        detail: dict[str, Any] = {
            "username": username,
            **({"role": role} if role else {}),
            **({"by": by} if by else {}),
        }
        if require_change:
            PasswordChangeRequired.objects.create(user_id=user.pk, set_by_username=getattr(created_by, "username", ""))
            detail["change_required"] = True
        audit_event_record(
            action=AuditAction.USER_CREATED, actor=created_by, target=user, request=request, detail=detail
        )
    return user


def user_password_set(
    *,
    user: AbstractBaseUser,
    password: str,
    set_by: Actor,
    by: str = "",
    request: HttpRequest | None = None,
    validate: bool = False,
    require_change: bool = False,
) -> None:
    """Set a user's password, audited: on someone else's authority (an admin, the demo set-up), or the user's own
    (then `set_by` is the user). The old password stops working and so does every API token the user holds
    (revoked here; refused anyway, accounts.tokens). With `require_change` (an admin's reset) the user must
    choose their own password before anything else; setting their own clears that."""
    if validate:
        _password_validate(password, user)
    with transaction.atomic(), grants_recorded():
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        prefixes = _tokens_revoke(tokens=ApiToken.objects.filter(user_id=locked.pk), reason="password_reset")
        detail: dict[str, Any] = {"username": locked.get_username(), **({"by": by} if by else {})}
        if prefixes:
            detail["tokens_revoked"] = prefixes
        self_change = set_by is not None and getattr(set_by, "pk", None) == locked.pk
        action = AuditAction.USER_PASSWORD_CHANGED if self_change else AuditAction.USER_PASSWORD_RESET
        if self_change:
            PasswordChangeRequired.objects.filter(user_id=locked.pk).delete()
        elif require_change:
            PasswordChangeRequired.objects.update_or_create(
                user_id=locked.pk, defaults={"set_by_username": getattr(set_by, "username", "") or by}
            )
            detail["change_required"] = True
        audit_event_record(action=action, actor=set_by, target=locked, request=request, detail=detail)
    user.password = locked.password


def user_deactivate(
    *, user: AbstractBaseUser, deactivated_by: Actor, reason: str = "", request: HttpRequest | None = None
) -> None:
    """Disable an account: no sign-in, no API token works (all revoked), sessions refused by Django."""
    _refuse_self(user=user, by=deactivated_by, doing="deactivate", request=request)
    if not user.is_active:
        raise Conflict("already_inactive", f"{user.get_username()} is already deactivated.")
    with transaction.atomic(), grants_recorded():
        get_user_model().objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        prefixes = _tokens_revoke(tokens=ApiToken.objects.filter(user_id=user.pk), reason="deactivated")
        detail: dict[str, Any] = {"username": user.get_username(), "reason": reason.strip()[:500]}
        if prefixes:
            detail["tokens_revoked"] = prefixes
        audit_event_record(
            action=AuditAction.USER_DEACTIVATED, actor=deactivated_by, target=user, request=request, detail=detail
        )


def user_reactivate(*, user: AbstractBaseUser, reactivated_by: Actor, request: HttpRequest | None = None) -> None:
    _refuse_self(user=user, by=reactivated_by, doing="reactivate", request=request)
    if user.is_active:
        raise Conflict("already_active", f"{user.get_username()} is already active.")
    with transaction.atomic(), grants_recorded():
        get_user_model().objects.filter(pk=user.pk).update(is_active=True)
        user.is_active = True
        audit_event_record(
            action=AuditAction.USER_REACTIVATED,
            actor=reactivated_by,
            target=user,
            request=request,
            detail={"username": user.get_username()},
        )


# --- Grants made outside the services (Django admin, shell): recorded by accounts.signals ----------------------

_FLAG_ACTIONS = {
    "is_staff": AuditAction.USER_STAFF_CHANGED,
    "is_superuser": AuditAction.USER_SUPERUSER_CHANGED,
}


def user_created_record(*, user: AbstractBaseUser, actor: Actor, request: HttpRequest | None) -> None:
    flags = {flag: True for flag in ("is_staff", "is_superuser") if getattr(user, flag, False)}
    detail: dict[str, Any] = {"username": user.get_username(), "via": "outside_services", **flags}
    with transaction.atomic():
        audit_event_record(action=AuditAction.USER_CREATED, actor=actor, target=user, request=request, detail=detail)


def user_changes_record(
    *, user: AbstractBaseUser, changes: dict[str, tuple[Any, Any]], actor: Actor, request: HttpRequest | None
) -> None:
    """A user's flags or password changed outside the services: one audit row per change. A changed password or
    a deactivation also revokes the user's API tokens (they are refused anyway: accounts.tokens)."""
    base = {"username": user.get_username(), "via": "outside_services"}
    with transaction.atomic():
        for field, (old, new) in changes.items():
            if field == "password":
                prefixes = _tokens_revoke(tokens=ApiToken.objects.filter(user_id=user.pk), reason="password_changed")
                detail = {**base, **({"tokens_revoked": prefixes} if prefixes else {})}
                audit_event_record(
                    action=AuditAction.USER_PASSWORD_CHANGED, actor=actor, target=user, request=request, detail=detail
                )
            elif field == "is_active":
                prefixes = (
                    [] if new else _tokens_revoke(tokens=ApiToken.objects.filter(user_id=user.pk), reason="deactivated")
                )
                action = AuditAction.USER_REACTIVATED if new else AuditAction.USER_DEACTIVATED
                detail = {**base, **({"tokens_revoked": prefixes} if prefixes else {})}
                audit_event_record(action=action, actor=actor, target=user, request=request, detail=detail)
            else:
                audit_event_record(
                    action=_FLAG_ACTIONS[field],
                    actor=actor,
                    target=user,
                    request=request,
                    detail={**base, "from": bool(old), "to": bool(new)},
                )


def group_membership_record(
    *, user_ids: Iterable[int], group_ids: Iterable[int], added: bool, actor: Actor, request: HttpRequest | None
) -> None:
    """Users put in or taken out of groups outside the services: a role group's change is a role grant or
    revocation; any other group (a team's supervisor group, say) is recorded as such."""
    users = list(get_user_model().objects.filter(pk__in=list(user_ids)))
    groups = list(Group.objects.filter(pk__in=list(group_ids)))
    with transaction.atomic():
        for user in users:
            for group in groups:
                if group.name in ROLES:
                    action = AuditAction.ROLE_GRANTED if added else AuditAction.ROLE_REVOKED
                    detail: dict[str, Any] = {"role": group.name}
                else:
                    action = AuditAction.GROUP_USER_ADDED if added else AuditAction.GROUP_USER_REMOVED
                    detail = {"group": group.name, "group_id": group.pk}
                detail |= {"username": user.get_username(), "via": "outside_services"}
                audit_event_record(action=action, actor=actor, target=user, request=request, detail=detail)


_TEAM_ACTIONS = {
    ("members", True): AuditAction.TEAM_MEMBER_ADDED,
    ("members", False): AuditAction.TEAM_MEMBER_REMOVED,
    ("supervisors", True): AuditAction.TEAM_SUPERVISOR_ADDED,
    ("supervisors", False): AuditAction.TEAM_SUPERVISOR_REMOVED,
}


def team_relation_record(
    *,
    team_ids: Iterable[int],
    user_ids: Iterable[int],
    relation: str,
    added: bool,
    actor: Actor,
    request: HttpRequest | None,
) -> None:
    users = list(get_user_model().objects.filter(pk__in=list(user_ids)))
    with transaction.atomic():
        for team in Team.objects.filter(pk__in=list(team_ids)):
            for user in users:
                audit_event_record(
                    action=_TEAM_ACTIONS[(relation, added)],
                    actor=actor,
                    target=team,
                    request=request,
                    detail={"user_id": user.pk, "username": user.get_username(), "via": "outside_services"},
                )


def permission_change_record(
    *,
    holder: Any,
    permission: str,
    added: bool,
    actor: Actor,
    request: HttpRequest | None,
    object_type: str = "",
    object_id: str = "",
    case_id: int | None = None,
) -> None:
    """A permission given to, or taken from, a user or group outside the services: a model permission, or a
    guardian object permission (then `object_type`/`object_id` name the object; `case_id` if it is a case)."""
    detail: dict[str, Any] = {
        "permission": permission,
        "holder": f"{holder._meta.model_name}:{holder}",
        "via": "outside_services",
    }
    if object_type:
        detail |= {"object_type": object_type, "object_id": str(object_id)}
    action = AuditAction.PERMISSION_GRANTED if added else AuditAction.PERMISSION_REVOKED
    with transaction.atomic():
        audit_event_record(action=action, actor=actor, target=holder, case_id=case_id, request=request, detail=detail)


def totp_device_record(*, device: TOTPDevice, change: str, actor: Actor, request: HttpRequest | None) -> None:
    """An authenticator app added, confirmed or removed outside the services."""
    action = {
        "added": AuditAction.AUTH_TOTP_DEVICE_ADDED,
        "confirmed": AuditAction.AUTH_TOTP_ENROLLED,
        "removed": AuditAction.AUTH_TOTP_REMOVED,
    }[change]
    user = device.user
    detail = {"username": user.get_username(), "device_id": device.pk, "via": "outside_services"}
    with transaction.atomic():
        audit_event_record(action=action, actor=actor, target=user, request=request, detail=detail)


def api_token_record(*, token: ApiToken, change: str, actor: Actor, request: HttpRequest | None) -> None:
    """An API token made or deleted outside the services."""
    user = token.user
    detail: dict[str, Any] = {"username": user.get_username(), "token": token.prefix, "via": "outside_services"}
    with transaction.atomic():
        if change == "created":
            expires = token.expires_at
            detail |= {
                "new": True,
                "expires_at": expires.isoformat() if hasattr(expires, "isoformat") else str(expires),
            }
            audit_event_record(
                action=AuditAction.AUTH_TOKEN_OBTAINED, actor=actor, target=user, request=request, detail=detail
            )
        else:
            detail |= {"tokens": [token.prefix], "reason": "deleted"}
            audit_event_record(
                action=AuditAction.AUTH_TOKEN_REVOKED, actor=actor, target=user, request=request, detail=detail
            )
