"""The review queue: what is waiting for a person, read through need-to-know (cases.access) only.

- second reviews waiting for them: candidates assessed once by someone else, on cases they may see, that they
  may assess now (an operator's possible match only if they are a second reviewer: supervisor or designated
  reviewer, settings.RFR_SECOND_REVIEWER_GROUPS);
- disputed decisions on cases they may see;
- their team's recent searches (teams they supervise or belong to);
- for investigators, the released and disputed outcomes on the cases they work on (owner or member).

The counts for the navigation come from `queue_counts`: two counting queries (tests/test_queue.py holds it).
Viewing the queue is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import Exists, Q, QuerySet
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.access import AnyUser, cases_visible_to
from cases.models import Candidate, Case, Search
from cases.notifications import notifications_unread_count
from cases.permissions import SEARCH_CASE

QUEUE_SHOWN = 50
RECENT_SEARCHES_SHOWN = 20


def reviews_waiting_for(*, user: AnyUser) -> QuerySet[Candidate]:
    """Candidates awaiting a second assessment that `user` may give now, oldest first."""
    if not user.is_authenticated:
        return Candidate.objects.none()
    # An operator's possible match only for a second reviewer: a subquery, so the count stays one query.
    reviewer = Group.objects.filter(user=user.pk, name__in=list(settings.RFR_SECOND_REVIEWER_GROUPS))
    waiting = Q(outcome=Candidate.Outcome.AWAITING_REVIEW) | Q(
        Exists(reviewer), outcome=Candidate.Outcome.POSSIBLE_MATCH
    )
    return (
        Candidate.objects.filter(waiting, subject_removed_at__isnull=True)
        .filter(search__case__in=cases_visible_to(user=user).filter(status=Case.Status.OPEN).values("pk"))
        .exclude(decisions__reviewer=user.pk)
        .select_related("search", "search__case")
        .order_by("search__created_at", "search_id", "rank")
    )


def disputed_for(*, user: AnyUser) -> QuerySet[Candidate]:
    """Disputed candidates (the two assessments disagree) on cases `user` may see, newest search first."""
    return (
        Candidate.objects.filter(outcome=Candidate.Outcome.DISPUTED)
        .filter(search__case__in=cases_visible_to(user=user).values("pk"))
        .select_related("search", "search__case")
        .order_by("-search__created_at", "rank")
    )


def outcomes_on_my_cases(*, user: AnyUser) -> QuerySet[Candidate]:
    """Released and disputed candidates on the cases `user` works on (owner or member), newest first."""
    return (
        Candidate.objects.filter(outcome__in=[Candidate.Outcome.RELEASED, Candidate.Outcome.DISPUTED])
        .filter(search__case__in=cases_visible_to(user=user, perm=SEARCH_CASE).values("pk"))
        .select_related("search", "search__case")
        .order_by("-search__created_at", "rank")
    )


def team_recent_searches(*, user: AnyUser) -> QuerySet[Search]:
    """Recent searches on the cases of the teams `user` supervises or belongs to, that they may see."""
    if not user.is_authenticated:
        return Search.objects.none()
    cases = cases_visible_to(user=user).filter(Q(team__supervisors=user.pk) | Q(team__members=user.pk))
    return (
        Search.objects.filter(case__in=cases.values("pk"))
        .select_related("case", "requested_by")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class QueueCounts:
    waiting: int
    unread: int


def queue_counts(*, user: AnyUser) -> QueueCounts:
    """The navigation's counts: reviews waiting for the user and their unread notifications (two queries)."""
    if not user.is_authenticated:
        return QueueCounts(0, 0)
    return QueueCounts(waiting=reviews_waiting_for(user=user).count(), unread=notifications_unread_count(user=user))


def queue_view_record(
    *,
    user: AbstractBaseUser,
    waiting: int,
    disputed: int,
    outcomes: int,
    searches: int,
    request: HttpRequest | None = None,
) -> None:
    """Every view of the queue is on the record, with how much it showed."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.QUEUE_VIEWED,
            actor=user,
            request=request,
            detail={"waiting": waiting, "disputed": disputed, "outcomes": outcomes, "searches": searches},
        )
