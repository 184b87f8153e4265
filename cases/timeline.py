"""A case's timeline: its audit events, newest first, as the people on the case may read them.

The audit rows are never changed; what changes is what is shown. A first assessment still awaiting its
second review is shown without its verdict and rationale to anyone but its author (cases.review). The same
withholding applies wherever audit events are shown (/audit/, its CSV, the case audit API): cases registers
`audit_events_withhold_pending_reviews` with audit (cases/apps.py), and every view shows events through
`audit.selectors.audit_events_for_reader`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from audit.actions import AuditAction
from audit.models import AuditEvent
from cases.models import Candidate, Case, Decision
from cases.review import AWAITING_SECOND_REVIEW, WITHHELD_TEXT, AnyUser


def case_audit_events(*, case: Case) -> QuerySet[AuditEvent]:
    """The case's timeline, newest first. The caller must already have checked the user may view the case."""
    return AuditEvent.objects.filter(case_id=case.pk).order_by("-seq")


def audit_events_withhold_pending_reviews(*, events: Iterable[AuditEvent], viewer: AnyUser) -> list[AuditEvent]:
    """Audit events for display, with the details of first assessments still awaiting their second review
    replaced (in memory only; audit rows are never changed) unless `viewer` wrote them."""
    events = list(events)
    first_ids: dict[int, int] = {}
    for event in events:
        if event.action == AuditAction.CANDIDATE_DECIDED and (event.detail or {}).get("stage") == Decision.Stage.FIRST:
            first_ids[event.pk] = int(event.detail.get("candidate_id") or 0)
    if not first_ids:
        return events
    pending = set(
        Candidate.objects.filter(pk__in=set(first_ids.values()), outcome__in=AWAITING_SECOND_REVIEW).values_list(
            "pk", flat=True
        )
    )
    viewer_id = getattr(viewer, "pk", None)
    for event in events:
        candidate_id = first_ids.get(event.pk)
        if candidate_id in pending and (viewer_id is None or event.actor_id != viewer_id):
            kept = {
                k: event.detail[k]
                for k in ("candidate_id", "search_id", "rank", "stage", "redacted")
                if k in event.detail
            }
            event.detail = {**kept, "withheld": WITHHELD_TEXT}
    return events
