"""In-app notifications: who is told what, made in the transaction of the event that causes them.

- a second review is waiting: to everyone on the case who may give it (for an operator's possible match, the
  second reviewers on the case; for a second reviewer's own first assessment, anyone else on the case), never
  to the first assessment's author, and never saying what the first verdict was (the review is independent);
- a possible match was released, or the two assessments disagree: to the case owner;
- a kept search found new candidates on a re-run (cases.research): to the case owner.

A notification is shown only while its recipient may still see its case (need-to-know follows the case, not
the message). Reading notifications is audited, like every view of case work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import get_users_with_perms

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.access import AnyUser, cases_visible_to
from cases.models import Candidate, Case, Decision, Notification, Search

NOTIFICATIONS_SHOWN = 100


def case_viewers(*, case: Case) -> list[Any]:
    """Active users who may see `case`: its owner, its members and its team's supervisors (superuser status
    does not count, as in cases.access)."""
    holders: Iterable[Any] = get_users_with_perms(case, with_group_users=True, only_with_perms_in=["view_case"])
    users = {user.pk: user for user in holders}
    users.setdefault(case.owner_id, case.owner)
    return [user for _, user in sorted(users.items()) if user.is_active]


def _second_reviewer_ids(user_ids: Iterable[int]) -> set[int]:
    groups = list(settings.RFR_SECOND_REVIEWER_GROUPS)
    users = get_user_model().objects.filter(pk__in=list(user_ids), groups__name__in=groups)
    return set(users.values_list("pk", flat=True))


def _notify(*, recipients: Iterable[Any], kind: str, case: Case, text: str, url: str) -> int:
    rows = [Notification(recipient=user, kind=kind, case=case, text=text[:300], url=url) for user in recipients]
    Notification.objects.bulk_create(rows)
    return len(rows)


def _candidate_words(candidate: Candidate, case: Case) -> str:
    return f"candidate {candidate.rank} of search {candidate.search_id} in case {case.reference}"


def notifications_after_decision(*, candidate: Candidate, decision: Decision, outcome: str) -> int:
    """Tell the people the new outcome concerns; call inside the decision's transaction."""
    case = Case.objects.select_related("owner").get(pk=candidate.search.case_id)
    url = reverse("cases:candidate", args=[candidate.pk])
    if outcome in {Candidate.Outcome.POSSIBLE_MATCH, Candidate.Outcome.AWAITING_REVIEW}:
        others = [user for user in case_viewers(case=case) if user.pk != decision.reviewer_id]
        if outcome == Candidate.Outcome.POSSIBLE_MATCH:  # only a second reviewer may give this one
            eligible = _second_reviewer_ids(user.pk for user in others)
            others = [user for user in others if user.pk in eligible]
        return _notify(
            recipients=others,
            kind=Notification.Kind.REVIEW_WAITING,
            case=case,
            text=f"A second review is waiting for you: {_candidate_words(candidate, case)}.",
            url=url,
        )
    if outcome in {Candidate.Outcome.RELEASED, Candidate.Outcome.DISPUTED} and case.owner_id != decision.reviewer_id:
        if outcome == Candidate.Outcome.RELEASED:
            kind = Notification.Kind.RELEASED
            text = f"Released as a possible match — intelligence only: {_candidate_words(candidate, case)}."
        else:
            kind = Notification.Kind.DISPUTED
            text = f"The two assessments disagree, so it is not released: {_candidate_words(candidate, case)}."
        return _notify(recipients=[case.owner], kind=kind, case=case, text=text, url=url)
    return 0


def notifications_after_research(*, search: Search, new_candidates: int, since: Any) -> int:
    """Tell the case owner that a re-run of a kept search found new candidates; call inside its transaction."""
    if not new_candidates:
        return 0
    case = search.case
    return _notify(
        recipients=[case.owner] if case.owner.is_active else [],
        kind=Notification.Kind.RESEARCH_FOUND,
        case=case,
        text=(
            f"Search {search.pk} in case {case.reference} found {new_candidates} new candidate"
            f"{'s' if new_candidates != 1 else ''} among gallery images enrolled since"
            f" {timezone.localtime(since):%d %b %Y %H:%M}."
        ),
        url=reverse("cases:search", args=[search.pk]),
    )


# --- Reading ---------------------------------------------------------------------------------------------------


def notifications_for(*, user: AnyUser) -> QuerySet[Notification]:
    """The user's notifications whose case they may still see (or that name no case), newest first."""
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(recipient=user.pk).filter(
        Q(case__isnull=True) | Q(case__in=cases_visible_to(user=user).values("pk"))
    )


def notifications_unread_count(*, user: AnyUser) -> int:
    return notifications_for(user=user).filter(read_at__isnull=True).count()


def notification_get_for_user(*, user: AnyUser, notification_id: int) -> Notification:
    """One of the user's own notifications; anyone else's, or one whose case they lost, does not exist (404)."""
    found = notifications_for(user=user).filter(pk=notification_id).first()
    if found is None:
        raise Http404("No such notification.")
    return found


def notifications_view_record(
    *, user: AbstractBaseUser, shown: Sequence[Notification], request: HttpRequest | None = None
) -> None:
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.NOTIFICATIONS_VIEWED,
            actor=user,
            request=request,
            detail={"shown": len(shown), "unread": sum(1 for n in shown if n.read_at is None)},
        )


def notifications_mark_read(
    *, user: AbstractBaseUser, notification_ids: Sequence[int] | None = None, request: HttpRequest | None = None
) -> int:
    """Mark the user's unread notifications read (all of them, or those named); returns how many changed."""
    with transaction.atomic():
        unread = notifications_for(user=user).filter(read_at__isnull=True)
        if notification_ids is not None:
            unread = unread.filter(pk__in=list(notification_ids))
        ids = list(unread.values_list("pk", flat=True))
        if not ids:
            return 0
        Notification.objects.filter(pk__in=ids).update(read_at=timezone.now())
        audit_event_record(
            action=AuditAction.NOTIFICATION_READ, actor=user, request=request, detail={"notification_ids": ids}
        )
    return len(ids)
