"""Reads of the audit trail, scoped to who is asking.

Who may read what is held as permissions, so this app needs to know nothing of roles, teams or cases:
- `audit.view_all_auditevent` (admins): every event;
- `audit.view_auditevent` (supervisors): their own events, and whatever the registered scopes add — accounts
  adds the events of the members of the teams they supervise, cases the events on those teams' cases;
- anyone else: none here (people on a case read its timeline, cases.timeline).

Scopes are registered by the apps that know the relationships (`audit_scope_register`, called from their
AppConfig.ready), so the dependency points from them to audit, never back.

Reading an event is not reading its case: what an event's `detail` says about a case (justifications,
rationales, verdicts, subject references, file names, descriptions) is case content, shown only to people who
may read that case. `audit_events_for_reader` is the one place events become what a person may read: for an
event on a case the reader is not on, `detail` keeps only the keys of `CASE_EVENT_SAFE_DETAIL` (ids, counts,
settings); the action, time, actor, target and case id stay. Which cases a user may read is the cases app's
knowledge, registered through `audit_case_readers_register`; further redactions (cases: a first assessment
still awaiting its independent second review) through `audit_redactor_register`. The rows never change;
only what is shown does.

Case references are case content too, and held by the cases app: `/audit/` filters and labels events by
reference through `audit_case_references_register` (cases registers the lookup, limited to the cases the
reader may read), so a reference finds, and names, only a case its reader is on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.actions import AUDIT_ACTION_DESCRIPTIONS, AuditAction
from audit.models import AuditEvent

AnyUser = AbstractBaseUser | AnonymousUser
AuditScope = Callable[[AnyUser], Q]
# The ids of the cases a user may read the content of.
CaseReaders = Callable[[AnyUser], Collection[int]]
# Replaces (in memory) the detail of the events a reader may not read in full.
AuditRedactor = Callable[[list[AuditEvent], AnyUser], None]


@dataclass(frozen=True)
class CaseReferences:
    """How the cases app turns references into case ids and back, for one reader: `find(user, reference)`
    gives the ids of the cases with that reference `user` may read, `name(user, ids)` the reference of each
    of those ids `user` may read (others left out)."""

    find: Callable[[AnyUser, str], Collection[int]]
    name: Callable[[AnyUser, Collection[int]], Mapping[int, str]]


VIEW_AUDIT = "audit.view_auditevent"
VIEW_ALL_AUDIT = "audit.view_all_auditevent"

_scopes: dict[str, AuditScope] = {}
_case_readers: dict[str, CaseReaders] = {}
_redactors: dict[str, AuditRedactor] = {}
_case_references: dict[str, CaseReferences] = {}

REDACTED_TEXT = "Case content withheld: only people on the case may read it."

# For an event on a case the reader is not on, the detail keys that may still be shown: ids, counts, settings
# and access changes, never what was said or seen (justifications, rationales, verdicts, subject references,
# file names, descriptions, reasons). An action missing here shows no detail at all (deny by default).
CASE_EVENT_SAFE_DETAIL: dict[str, frozenset[str]] = {
    AuditAction.CASE_CREATED: frozenset({"team_id"}),
    AuditAction.CASE_MEMBER_ADDED: frozenset({"user_id", "username"}),
    AuditAction.CASE_MEMBER_REMOVED: frozenset({"user_id", "username"}),
    AuditAction.CASE_RETENTION_PURGED: frozenset({"deleted", "files_deleted"}),
    AuditAction.PROBE_UPLOADED: frozenset({"size_bytes", "lawfully_held"}),
    AuditAction.PROBE_PROCESSED: frozenset({"faces", "pack_key"}),
    AuditAction.PROBE_FAILED: frozenset({"code"}),
    AuditAction.PROBE_FACE_DRAWN: frozenset({"probe_id"}),
    AuditAction.PROBE_IMAGE_VIEWED: frozenset({"probe_id", "face_id", "shown", "via"}),
    AuditAction.SEARCH_REQUESTED: frozenset(
        {"probe_id", "face_id", "galleries", "top_k", "threshold", "threshold_source", "pack_key"}
    ),
    AuditAction.SEARCH_COMPLETED: frozenset({"candidates", "pack_key"}),
    AuditAction.SEARCH_FAILED: frozenset({"code"}),
    AuditAction.SEARCH_CANDIDATES_VIEWED: frozenset({"via", "candidates"}),
    AuditAction.CANDIDATE_VIEWED: frozenset({"search_id", "rank", "via"}),
    AuditAction.CANDIDATE_IMAGE_VIEWED: frozenset({"search_id", "rank", "shown", "via"}),
    AuditAction.CANDIDATE_DECIDED: frozenset({"candidate_id", "search_id", "rank", "stage"}),
}


def audit_scope_register(name: str, scope: AuditScope) -> None:
    """Add the events `scope(user)` selects to what a holder of audit.view_auditevent may read."""
    _scopes[name] = scope


def audit_case_readers_register(name: str, readers: CaseReaders) -> None:
    """Say which cases a user may read the content of (the cases app, from its AppConfig.ready)."""
    _case_readers[name] = readers


def audit_redactor_register(name: str, redactor: AuditRedactor) -> None:
    """Add a redaction applied to every list of events shown to a person (after the case-content one)."""
    _redactors[name] = redactor


def audit_case_references_register(name: str, references: CaseReferences) -> None:
    """Let `/audit/` filter and label events by case reference (the cases app, from its AppConfig.ready)."""
    _case_references[name] = references


def audit_case_ids_for_reference(*, user: AnyUser, reference: str) -> set[int]:
    """The ids of the cases called `reference` that `user` may read; none if nobody registered a lookup."""
    found: set[int] = set()
    for references in _case_references.values():
        found.update(int(pk) for pk in references.find(user, reference))
    return found


def audit_case_reference_names(*, user: AnyUser, case_ids: Collection[int]) -> dict[int, str]:
    """{case id: reference} for those of `case_ids` whose cases `user` may read."""
    names: dict[int, str] = {}
    for references in _case_references.values():
        names.update(references.name(user, case_ids))
    return names


def _holds(user: AnyUser, perm: str) -> bool:
    """Whether an active, signed-in user holds `perm` (through a role group, or as a superuser)."""
    return isinstance(user, PermissionsMixin) and user.is_active and user.has_perm(perm)


def audit_view_allowed(*, user: AnyUser) -> bool:
    return _holds(user, VIEW_AUDIT)


def audit_events_visible_to(*, user: AnyUser) -> QuerySet[AuditEvent]:
    if _holds(user, VIEW_ALL_AUDIT):
        return AuditEvent.objects.all()
    if not _holds(user, VIEW_AUDIT):
        return AuditEvent.objects.none()
    visible = Q(actor=user.pk)
    for scope in _scopes.values():
        visible |= scope(user)
    return AuditEvent.objects.filter(visible)


def audit_events_filter(
    events: QuerySet[AuditEvent],
    *,
    username: str = "",
    case_id: int | None = None,
    case_ids: Collection[int] | None = None,
    action: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    if username:
        events = events.filter(actor_username__iexact=username)
    if case_id is not None:
        events = events.filter(case_id=case_id)
    if case_ids is not None:  # an empty collection (a reference that names no readable case) matches nothing
        events = events.filter(case_id__in=list(case_ids))
    if action:
        # "case." matches every case action; "case.created" exactly that one.
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    tz = timezone.get_current_timezone()
    if date_from is not None:
        events = events.filter(created_at__gte=dt.datetime.combine(date_from, dt.time.min, tzinfo=tz))
    if date_to is not None:
        events = events.filter(
            created_at__lt=dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        )
    return events.order_by("-seq")


def audit_action_choices() -> list[tuple[str, str]]:
    """(code, what it records) for every action of the vocabulary, for the filter's suggestions."""
    return [(action.value, AUDIT_ACTION_DESCRIPTIONS[action]) for action in AuditAction]


def audit_case_ids_readable_by(*, user: AnyUser) -> set[int]:
    """The cases whose content `user` may read, as the registered readers say; none if nobody registered."""
    readable: set[int] = set()
    if not getattr(user, "is_authenticated", False):
        return readable
    for readers in _case_readers.values():
        readable.update(int(pk) for pk in readers(user))
    return readable


def audit_event_detail_redact(event: AuditEvent) -> dict[str, object]:
    """The detail of a case event as shown to someone not on the case: the safe keys and a note."""
    safe = CASE_EVENT_SAFE_DETAIL.get(event.action, frozenset())
    detail = event.detail or {}
    return {**{key: detail[key] for key in sorted(safe) if key in detail}, "redacted": REDACTED_TEXT}


def audit_events_for_reader(
    *, events: Iterable[AuditEvent], viewer: AnyUser, readable_case_ids: Collection[int] | None = None
) -> list[AuditEvent]:
    """`events` as `viewer` may read them: case content only for the cases they are on, then every registered
    redaction (the detail is replaced in memory only; audit rows are never changed). Pass
    `readable_case_ids` (from `audit_case_ids_readable_by`) when calling repeatedly for one reader."""
    events = list(events)
    readable = audit_case_ids_readable_by(user=viewer) if readable_case_ids is None else readable_case_ids
    for event in events:
        if event.case_id is not None and event.case_id not in readable:
            event.detail = audit_event_detail_redact(event)
    for redactor in _redactors.values():
        redactor(events, viewer)
    return events
