"""A case's life: opening it, who may work on it, closing it. Each change commits with its audit event.

Callers fetch the case with cases.access.case_get_for_user first; these services then apply the rules of
who may do what (only the owner manages members; the owner or a team supervisor closes; a closed case takes
no new work).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.grants import grants_recorded
from accounts.models import Team
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.models import Case
from cases.permissions import case_member_grant, case_member_ids, case_member_revoke, case_owner_grant
from rfr.errors import Conflict, Forbidden, InvalidInput
from rfr.limits import text_limit_check


def case_create(
    *,
    owner: AbstractBaseUser,
    reference: str,
    title: str,
    purpose: str,
    offence_category: str,
    legal_basis: str,
    team: Team | None = None,
    request: HttpRequest | None = None,
) -> Case:
    """Open a case owned by `owner`. Without `team`, an owner who belongs to exactly one team gets that
    team, so that the case falls under its supervisors' oversight."""
    if purpose not in Case.Purpose.values:
        message = f"Choose one of {', '.join(Case.Purpose.values)}."
        raise InvalidInput("invalid_purpose", message, fields={"purpose": [message]})
    if not reference.strip() or not title.strip():
        raise InvalidInput("reference_and_title_required", "A case needs a reference and a title.")
    if not legal_basis.strip():
        message = "State the lawful basis for searching images in this case."
        raise InvalidInput("legal_basis_required", message, fields={"legal_basis": [message]})
    text_limit_check("legal_basis", legal_basis.strip())
    if Case.objects.filter(reference__iexact=reference.strip()).exists():
        raise _reference_in_use(reference.strip())
    owner_teams = Team.objects.filter(members=owner.pk)
    if team is None:
        only = list(owner_teams[:2])
        team = only[0] if len(only) == 1 else None
    elif not owner_teams.filter(pk=team.pk).exists():
        message = "You can only open a case for a team you belong to."
        raise InvalidInput("invalid_team", message, fields={"team": [message]})
    with transaction.atomic(), grants_recorded():  # the case's permissions are recorded by case.created
        try:
            with transaction.atomic():
                case = Case.objects.create(
                    owner=owner,  # type: ignore[misc]
                    reference=reference.strip(),
                    title=title.strip(),
                    purpose=purpose,
                    offence_category=offence_category.strip(),
                    legal_basis=legal_basis.strip(),
                    team=team,
                )  # post_save (cases.signals) gives the team's supervisor group view on the case
        except IntegrityError:  # the same reference, opened by someone else a moment ago (unique constraint)
            raise _reference_in_use(reference.strip()) from None
        case_owner_grant(case)
        audit_event_record(
            action=AuditAction.CASE_CREATED,
            actor=owner,
            target=case,
            case_id=case.pk,
            request=request,
            detail={"reference": case.reference, "purpose": case.purpose, "team_id": case.team_id},
        )
    return case


def _reference_in_use(reference: str) -> InvalidInput:
    # The other case may be outside the person's need-to-know: say the reference is taken, never whose case.
    message = f"The reference {reference} is already used by another case. Check it, or add a suffix (e.g. /2)."
    return InvalidInput("reference_in_use", message, fields={"reference": [message]})


def _require_owner(case: Case, user: AbstractBaseUser, doing: str) -> None:
    if case.owner_id != user.pk:
        raise Forbidden("owner_only", f"Only the case owner can {doing}.")


def case_member_add(
    *, case: Case, user: AbstractBaseUser, added_by: AbstractBaseUser, request: HttpRequest | None = None
) -> None:
    _require_owner(case, added_by, "add members")
    if not case.is_open:
        raise Conflict("case_closed", "The case is closed; members cannot be added.")
    if user.pk == case.owner_id:
        raise Conflict("already_member", "The owner already has access to the case.")
    if not user.is_active:
        raise InvalidInput("user_inactive", "That account is disabled.")
    if user.pk in case_member_ids(case):
        raise Conflict("already_member", f"{user.get_username()} is already a member of this case.")
    with transaction.atomic(), grants_recorded():
        case_member_grant(case, user)
        audit_event_record(
            action=AuditAction.CASE_MEMBER_ADDED,
            actor=added_by,
            target=case,
            case_id=case.pk,
            request=request,
            detail={"user_id": user.pk, "username": user.get_username()},
        )


def case_member_remove(
    *, case: Case, user: AbstractBaseUser, removed_by: AbstractBaseUser, request: HttpRequest | None = None
) -> None:
    _require_owner(case, removed_by, "remove members")
    if user.pk not in case_member_ids(case):
        raise Conflict("not_a_member", f"{user.get_username()} is not a member of this case.")
    with transaction.atomic(), grants_recorded():
        case_member_revoke(case, user)
        audit_event_record(
            action=AuditAction.CASE_MEMBER_REMOVED,
            actor=removed_by,
            target=case,
            case_id=case.pk,
            request=request,
            detail={"user_id": user.pk, "username": user.get_username()},
        )


def case_close(
    *, case: Case, closed_by: AbstractBaseUser, reason: str = "", request: HttpRequest | None = None
) -> Case:
    is_supervisor = case.team_id is not None and Team.objects.filter(pk=case.team_id, supervisors=closed_by.pk).exists()
    if case.owner_id != closed_by.pk and not is_supervisor:
        raise Forbidden(
            "owner_or_supervisor_only", "Only the case owner or a supervisor of its team can close the case."
        )
    text_limit_check("case_close_reason", reason.strip(), label="reason")
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if not locked.is_open:
            raise Conflict("case_closed", "The case is already closed.")
        locked.status = Case.Status.CLOSED
        locked.closed_at = timezone.now()
        locked.save(update_fields=["status", "closed_at", "updated_at"])
        audit_event_record(
            action=AuditAction.CASE_CLOSED,
            actor=closed_by,
            target=locked,
            case_id=locked.pk,
            request=request,
            detail={"reason": reason.strip()},
        )
    case.status, case.closed_at = locked.status, locked.closed_at
    return locked


def case_reopen(*, case: Case, reopened_by: AbstractBaseUser, reason: str, request: HttpRequest | None = None) -> Case:
    """A supervisor of the case's team reopens a closed case, with a reason (the owner alone cannot)."""
    if case.team_id is None or not Team.objects.filter(pk=case.team_id, supervisors=reopened_by.pk).exists():
        raise Forbidden("supervisor_only", "Only a supervisor of the case's team can reopen a closed case.")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason_required", "Give the reason for reopening.", fields={"reason": ["Required."]})
    text_limit_check("case_reopen_reason", reason, label="reason")
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if locked.is_open:
            raise Conflict("case_open", "The case is already open.")
        locked.status = Case.Status.OPEN
        locked.closed_at = None
        locked.save(update_fields=["status", "closed_at", "updated_at"])
        audit_event_record(
            action=AuditAction.CASE_REOPENED,
            actor=reopened_by,
            target=locked,
            case_id=locked.pk,
            request=request,
            detail={"reason": reason},
        )
    case.status, case.closed_at = locked.status, locked.closed_at
    return locked


def case_may_close(*, case: Case, user: AbstractBaseUser) -> bool:
    """Whether `user` may close `case` now (its owner or a supervisor of its team, while it is open)."""
    supervises = case.team_id is not None and Team.objects.filter(pk=case.team_id, supervisors=user.pk).exists()
    return case.is_open and (case.owner_id == user.pk or supervises)


def case_may_reopen(*, case: Case, user: AbstractBaseUser) -> bool:
    """Whether `user` may reopen `case` now (a supervisor of its team, while it is closed)."""
    supervises = case.team_id is not None and Team.objects.filter(pk=case.team_id, supervisors=user.pk).exists()
    return not case.is_open and supervises


def case_require_open(*, case: Case, action: str) -> None:
    if not case.is_open:
        raise Conflict(
            "case_closed",
            f"Case {case.reference} is closed, so {action} is not possible. Ask a supervisor to reopen it.",
        )
