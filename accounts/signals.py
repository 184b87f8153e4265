"""Audit every sign-in, sign-out and failed sign-in, wherever Django's auth machinery reports it; and every grant
that reaches the database without going through a service (the Django admin, a shell, another app's code).

Grant receivers stay silent inside a service's `accounts.grants.grants_recorded()` block (the service records
the change itself, with its actor); anything else is recorded through the `*_record` services of
accounts.services, inside the transaction of the change where Django gives one (m2m changes and the admin's
views are atomic; a bare `save()` in autocommit mode commits its row just before the audit row). Watched:

- users: creation; `is_active`, `is_staff`, `is_superuser` and `password` changes (pre_save reads the stored
  values to compare);
- groups (`User.groups`, either side), model permissions (`User.user_permissions`, `Group.permissions`);
- teams' members and supervisors (either side);
- guardian object permissions of users and groups (e.g. a case's view permission);
- authenticator apps (added, confirmed, removed) and API tokens (made or deleted outside the services).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice
from guardian.conf import settings as guardian_settings
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.grants import grants_current_request, grants_recorded_by_caller
from accounts.models import ApiToken, Team
from accounts.selectors import login_lockout_active
from accounts.services import (
    api_token_record,
    group_membership_record,
    login_failure_record,
    login_success_record,
    logout_record,
    permission_change_record,
    team_relation_record,
    totp_device_record,
    user_changes_record,
    user_created_record,
)

User = get_user_model()
_WATCHED_USER_FIELDS = ("is_active", "is_staff", "is_superuser", "password")


@receiver(user_logged_in, dispatch_uid="accounts.audit_login")
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    login_success_record(user=user, request=request)


@receiver(user_logged_out, dispatch_uid="accounts.audit_logout")
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    logout_record(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already replaced the password in `credentials`; only the attempted username is used.
    username = credentials.get("username")
    locked = login_lockout_active(username=username, request=request) is not None
    login_failure_record(username=username, request=request, reason="locked_out" if locked else "bad_credentials")


# --- Grants outside the services ---------------------------------------------------------------------------------


def _silent(kwargs: dict[str, Any]) -> bool:
    """Fixture loading (raw rows) and changes a service is already recording are not recorded here."""
    return bool(kwargs.get("raw")) or grants_recorded_by_caller()


def _who() -> tuple[Any, HttpRequest | None]:
    request = grants_current_request()
    user = getattr(request, "user", None) if request is not None else None
    return (user if user is not None and user.is_authenticated else None), request


def _is_guardian_anonymous_user(user: Any) -> bool:
    name = guardian_settings.ANONYMOUS_USER_NAME
    return name is not None and user.get_username() == name and not user.has_usable_password()


@receiver(pre_save, sender=User, dispatch_uid="accounts.grants_user_pre_save")
def user_pre_save(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if _silent(kwargs) or instance.pk is None:
        return
    watched = [f for f in _WATCHED_USER_FIELDS if update_fields is None or f in update_fields]
    if not watched:
        return  # e.g. the last_login update at every sign-in
    stored = sender.objects.filter(pk=instance.pk).values(*watched).first()
    if stored is None:
        return
    changes = {f: (stored[f], getattr(instance, f)) for f in watched if stored[f] != getattr(instance, f)}
    instance._rfr_grant_changes = changes


@receiver(post_save, sender=User, dispatch_uid="accounts.grants_user_post_save")
def user_post_save(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    changes = instance.__dict__.pop("_rfr_grant_changes", None)
    if _silent(kwargs):
        return
    actor, request = _who()
    if created:
        if _is_guardian_anonymous_user(instance):
            return  # made by django-guardian at every migrate: no password, no roles, cannot sign in
        user_created_record(user=instance, actor=actor, request=request)
    elif changes:
        user_changes_record(user=instance, changes=changes, actor=actor, request=request)


def _m2m_pairs(instance: Any, action: str, reverse: bool, pk_set: set[int] | None, attr: str) -> list[int] | None:
    """The other side's ids for a post_add/post_remove/post_clear (None for other actions). For a clear, the ids
    were read at pre_clear and kept on the instance under `attr`."""
    if action in ("post_add", "post_remove"):
        return list(pk_set or ())
    if action == "post_clear":
        return list(getattr(instance, attr, None) or ())
    return None


def _m2m_pre_clear(instance: Any, attr: str, ids: list[int]) -> None:
    setattr(instance, attr, ids)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.grants_user_groups")
def user_groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if grants_recorded_by_caller():
        return
    if action == "pre_clear":
        ids = (
            instance.user_set.values_list("pk", flat=True) if reverse else instance.groups.values_list("pk", flat=True)
        )
        _m2m_pre_clear(instance, "_rfr_cleared_groups", list(ids))
        return
    others = _m2m_pairs(instance, action, reverse, pk_set, "_rfr_cleared_groups")
    if not others:
        return
    actor, request = _who()
    user_ids, group_ids = (others, [instance.pk]) if reverse else ([instance.pk], others)
    group_membership_record(
        user_ids=user_ids, group_ids=group_ids, added=action == "post_add", actor=actor, request=request
    )


def _permissions_changed(holder_model: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None) -> None:
    if grants_recorded_by_caller():
        return
    if action == "pre_clear":
        if reverse:  # permission.user_set.clear() / permission.group_set.clear()
            related = instance.user_set if holder_model is User else instance.group_set
            ids = related.values_list("pk", flat=True)
        else:
            ids = (
                instance.user_permissions.values_list("pk", flat=True)
                if holder_model is User
                else (instance.permissions.values_list("pk", flat=True))
            )
        _m2m_pre_clear(instance, "_rfr_cleared_permissions", list(ids))
        return
    others = _m2m_pairs(instance, action, reverse, pk_set, "_rfr_cleared_permissions")
    if not others:
        return
    actor, request = _who()
    if reverse:
        pairs = [(holder, instance) for holder in holder_model.objects.filter(pk__in=others)]
    else:
        pairs = [(instance, permission) for permission in Permission.objects.filter(pk__in=others)]
    for holder, permission in pairs:
        permission_change_record(
            holder=holder,
            permission=f"{permission.content_type.app_label}.{permission.codename}",
            added=action == "post_add",
            actor=actor,
            request=request,
        )


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="accounts.grants_user_permissions")
def user_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _permissions_changed(User, instance, action, reverse, pk_set)


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="accounts.grants_group_permissions")
def group_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _permissions_changed(Group, instance, action, reverse, pk_set)


def _team_relation_changed(relation: str, instance: Any, action: str, reverse: bool, pk_set: set[int] | None) -> None:
    if grants_recorded_by_caller():
        return
    attr = f"_rfr_cleared_team_{relation}"
    if action == "pre_clear":
        if reverse:  # user.teams.clear() / user.supervised_teams.clear()
            related = instance.teams if relation == "members" else instance.supervised_teams
        else:
            related = getattr(instance, relation)
        _m2m_pre_clear(instance, attr, list(related.values_list("pk", flat=True)))
        return
    others = _m2m_pairs(instance, action, reverse, pk_set, attr)
    if not others:
        return
    actor, request = _who()
    team_ids, user_ids = (others, [instance.pk]) if reverse else ([instance.pk], others)
    team_relation_record(
        team_ids=team_ids,
        user_ids=user_ids,
        relation=relation,
        added=action == "post_add",
        actor=actor,
        request=request,
    )


@receiver(m2m_changed, sender=Team.members.through, dispatch_uid="accounts.grants_team_members")
def team_members_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _team_relation_changed("members", instance, action, reverse, pk_set)


@receiver(m2m_changed, sender=Team.supervisors.through, dispatch_uid="accounts.grants_team_supervisors")
def team_supervisors_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _team_relation_changed("supervisors", instance, action, reverse, pk_set)


def _object_permission_changed(instance: Any, added: bool) -> None:
    holder = instance.user if isinstance(instance, UserObjectPermission) else instance.group
    content_type = instance.content_type
    actor, request = _who()
    permission_change_record(
        holder=holder,
        permission=f"{instance.permission.content_type.app_label}.{instance.permission.codename}",
        added=added,
        actor=actor,
        request=request,
        object_type=f"{content_type.app_label}.{content_type.model}",
        object_id=str(instance.object_pk),
    )


@receiver(post_save, sender=UserObjectPermission, dispatch_uid="accounts.grants_user_object_perm_saved")
@receiver(post_save, sender=GroupObjectPermission, dispatch_uid="accounts.grants_group_object_perm_saved")
def object_permission_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created and not _silent(kwargs):
        _object_permission_changed(instance, added=True)


@receiver(post_delete, sender=UserObjectPermission, dispatch_uid="accounts.grants_user_object_perm_deleted")
@receiver(post_delete, sender=GroupObjectPermission, dispatch_uid="accounts.grants_group_object_perm_deleted")
def object_permission_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if not _silent(kwargs):
        _object_permission_changed(instance, added=False)


@receiver(pre_save, sender=TOTPDevice, dispatch_uid="accounts.grants_totp_pre_save")
def totp_device_pre_save(sender: Any, instance: TOTPDevice, **kwargs: Any) -> None:
    if _silent(kwargs) or instance.pk is None or not instance.confirmed:
        return
    # Every good code saves the device (its last time step); only a newly confirmed device is a grant.
    was_confirmed = sender.objects.filter(pk=instance.pk).values_list("confirmed", flat=True).first()
    if was_confirmed is False:
        instance._rfr_newly_confirmed = True


@receiver(post_save, sender=TOTPDevice, dispatch_uid="accounts.grants_totp_post_save")
def totp_device_saved(sender: Any, instance: TOTPDevice, created: bool, **kwargs: Any) -> None:
    newly_confirmed = instance.__dict__.pop("_rfr_newly_confirmed", False)
    if _silent(kwargs):
        return
    actor, request = _who()
    if created:
        change = "confirmed" if instance.confirmed else "added"
        totp_device_record(device=instance, change=change, actor=actor, request=request)
    elif newly_confirmed:
        totp_device_record(device=instance, change="confirmed", actor=actor, request=request)


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="accounts.grants_totp_deleted")
def totp_device_deleted(sender: Any, instance: TOTPDevice, **kwargs: Any) -> None:
    if not _silent(kwargs):
        actor, request = _who()
        totp_device_record(device=instance, change="removed", actor=actor, request=request)


@receiver(post_save, sender=ApiToken, dispatch_uid="accounts.grants_token_saved")
def api_token_saved(sender: Any, instance: ApiToken, created: bool, **kwargs: Any) -> None:
    if created and not _silent(kwargs):
        actor, request = _who()
        api_token_record(token=instance, change="created", actor=actor, request=request)


@receiver(post_delete, sender=ApiToken, dispatch_uid="accounts.grants_token_deleted")
def api_token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    if not _silent(kwargs):
        actor, request = _who()
        api_token_record(token=instance, change="deleted", actor=actor, request=request)
