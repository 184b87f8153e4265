"""The candidate list of a search as a reviewer works through it: filtered by decision state (a plain query
parameter, so it works without JavaScript), each candidate with the thumbnail of its aligned face.

Thumbnails and the audit trail: opening the list is one audit event (`search.candidates_viewed`), whose detail
names the candidates whose thumbnails the page shows. The page's thumbnail requests that follow are covered
by that event rather than each writing its own: the list view grants this session the thumbnails of that
search for THUMBNAIL_GRANT_SECONDS. A thumbnail fetched outside such a grant (a bookmarked URL, an expired
page) is recorded on its own as a candidate image view, so no thumbnail is ever served off the record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.sessions.backends.base import SessionBase

from cases.models import Candidate

THUMBNAIL_GRANT_SECONDS = 15 * 60
_SESSION_KEY = "rfr_candidate_thumbnails"


@dataclass(frozen=True)
class StateFilter:
    key: str
    label: str
    outcomes: frozenset[str] | None  # None: every candidate


Outcome = Candidate.Outcome
# The order a reviewer meets them in: what is left to do first, then what is settled.
CANDIDATE_STATE_FILTERS: tuple[StateFilter, ...] = (
    StateFilter("all", "All", None),
    StateFilter("unreviewed", "Not yet reviewed", frozenset({Outcome.UNREVIEWED})),
    StateFilter("awaiting", "Awaiting second review", frozenset({Outcome.POSSIBLE_MATCH, Outcome.AWAITING_REVIEW})),
    StateFilter("released", "Released possible matches", frozenset({Outcome.RELEASED})),
    StateFilter("disputed", "Disputed", frozenset({Outcome.DISPUTED})),
    StateFilter("not_a_match", "Not a match", frozenset({Outcome.NOT_A_MATCH})),
    StateFilter("inconclusive", "Inconclusive", frozenset({Outcome.INCONCLUSIVE})),
)
_FILTERS = {f.key: f for f in CANDIDATE_STATE_FILTERS}


@dataclass(frozen=True)
class FilterChoice:
    key: str
    label: str
    count: int
    current: bool


def candidates_filter_by_state(
    *, candidates: Iterable[Candidate], state: str | None
) -> tuple[list[Candidate], list[FilterChoice], str]:
    """The candidates in `state` (an unknown or missing state shows all), the filter choices with their counts
    (states with no candidate are left out, except "All" and the chosen one), and the chosen state's key."""
    everyone = list(candidates)
    chosen = _FILTERS.get(state or "", _FILTERS["all"])
    choices = []
    for option in CANDIDATE_STATE_FILTERS:
        count = sum(1 for c in everyone if option.outcomes is None or c.outcome in option.outcomes)
        if count or option.key in {"all", chosen.key}:
            choices.append(FilterChoice(option.key, option.label, count, option.key == chosen.key))
    shown = [c for c in everyone if chosen.outcomes is None or c.outcome in chosen.outcomes]
    return shown, choices, chosen.key


def thumbnails_grant(*, session: SessionBase, search_id: int, now: float | None = None) -> None:
    """Let this session fetch the search's candidate thumbnails for a while, covered by the list's audit event."""
    now = time.time() if now is None else now
    grants = {k: v for k, v in (session.get(_SESSION_KEY) or {}).items() if float(v) > now}  # drop stale ones
    grants[str(search_id)] = now + THUMBNAIL_GRANT_SECONDS
    session[_SESSION_KEY] = grants


def thumbnails_granted(*, session: SessionBase, search_id: int, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    expiry = (session.get(_SESSION_KEY) or {}).get(str(search_id))
    return expiry is not None and float(expiry) > now


def thumbnail_candidate_ids(candidates: Sequence[Candidate]) -> list[int]:
    """The candidates whose thumbnail a list shows: those whose gallery entry is still held."""
    return [c.pk for c in candidates if c.subject_removed_at is None]
