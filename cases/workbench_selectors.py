"""Reads of the case workbench. Every object is reached through its case, so outsiders get a 404."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

import faceengine
from audit.models import AuditEvent
from cases.models import Candidate, Case, Decision, Probe, ProbeFace, Search

VIEW = "cases.view_case"
SEARCH = "cases.search_case"

User = AbstractBaseUser | AnonymousUser


def _case_check(*, user: User, case_id: int, perm: str) -> Case:
    from cases.selectors import case_get_for_user

    return case_get_for_user(user=user, case_id=case_id, perm=perm)


def probe_get_for_user(*, user: User, probe_id: int, perm: str = VIEW) -> Probe:
    probe = Probe.objects.select_related("case", "uploaded_by").filter(pk=probe_id).first()
    if probe is None:
        raise Http404("No such probe.")
    probe.case = _case_check(user=user, case_id=probe.case_id, perm=perm)
    return probe


def face_get_for_user(*, user: User, face_id: int, perm: str = VIEW) -> ProbeFace:
    face = ProbeFace.objects.select_related("probe", "probe__case").filter(pk=face_id).first()
    if face is None:
        raise Http404("No such face.")
    face.probe.case = _case_check(user=user, case_id=face.probe.case_id, perm=perm)
    return face


def search_get_for_user(*, user: User, search_id: int, perm: str = VIEW) -> Search:
    search = Search.objects.select_related("case", "face", "face__probe", "requested_by").filter(pk=search_id).first()
    if search is None:
        raise Http404("No such search.")
    search.case = _case_check(user=user, case_id=search.case_id, perm=perm)
    return search


def candidate_get_for_user(*, user: User, candidate_id: int, perm: str = VIEW) -> Candidate:
    candidate = (
        Candidate.objects.select_related("search", "search__case", "search__face", "search__face__probe")
        .filter(pk=candidate_id)
        .first()
    )
    if candidate is None:
        raise Http404("No such candidate.")
    candidate.search.case = _case_check(user=user, case_id=candidate.search.case_id, perm=perm)
    return candidate


def probes_of_case(*, case: Case) -> QuerySet[Probe]:
    return case.probes.select_related("uploaded_by").prefetch_related("faces")


def searches_of_case(*, case: Case) -> QuerySet[Search]:
    return case.searches.select_related("requested_by", "face", "face__probe")


def candidates_of_search(*, search: Search) -> QuerySet[Candidate]:
    return search.candidates.prefetch_related("decisions", "decisions__reviewer").order_by("rank")


def galleries_searchable() -> QuerySet[Any]:
    from search.models import Gallery

    return Gallery.objects.order_by("name")


def cases_past_retention(*, now: datetime | None = None) -> QuerySet[Case]:
    """Closed cases whose probes and results are due for deletion under RFR_CASE_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.RFR_CASE_RETENTION_DAYS)
    return Case.objects.filter(status=Case.Status.CLOSED, closed_at__isnull=False, closed_at__lte=cutoff)


def candidate_gallery_template(*, candidate: Candidate) -> Any:
    """The gallery template a candidate came from, or None once the gallery image has been deleted."""
    from search.models import Template

    return Template.objects.select_related("image").filter(pk=candidate.template_id).first()


def candidate_aligned_crop(*, candidate: Candidate) -> np.ndarray | None:
    """The candidate's face aligned as the probe face was (112x112 BGR), rebuilt from the gallery image."""
    from faceengine.align import align_face
    from rfr.engine import image_limits

    template = candidate_gallery_template(candidate=candidate)
    if template is None:
        return None
    try:
        with template.image.file.open("rb") as handle:
            image = faceengine.decode_image(handle.read(), image_limits())
    except (FileNotFoundError, faceengine.ImageRejected):
        return None
    return align_face(image, np.asarray(template.landmarks, dtype=np.float32))


# --- Independence of the second review ---------------------------------------------------------------------
# While a possible match awaits its second review, the first assessment's verdict and rationale are shown
# to their author only: whoever gives the second review must reach their own view without them. Once the
# second review is recorded (or the first assessment needs none), every decision is shown to everyone on
# the case. The same rule applies to the pages, the API, the PDF report and the case timeline.

WITHHELD_TEXT = (
    "A first assessment has been recorded. Its verdict and rationale are withheld until the independent"
    " second review is recorded, so that the second reviewer decides without them."
)


def decisions_visible_to(
    *, candidate: Candidate, viewer: User | None, decisions: Sequence[Decision] | None = None
) -> tuple[list[Decision], int]:
    """The candidate's decisions `viewer` may read now, and how many are withheld from them."""
    decisions = list(candidate.decisions.all()) if decisions is None else list(decisions)
    if candidate.outcome != Candidate.Outcome.POSSIBLE_MATCH:
        return decisions, 0
    viewer_id = getattr(viewer, "pk", None)
    visible = [d for d in decisions if viewer_id is not None and d.reviewer_id == viewer_id]
    return visible, len(decisions) - len(visible)


def audit_events_withhold_pending_reviews(*, events: Iterable[AuditEvent], viewer: User) -> list[AuditEvent]:
    """Audit events for display, with the details of first assessments still awaiting their second review
    replaced (in memory only; audit rows are never changed) unless `viewer` wrote them."""
    events = list(events)
    first_ids: dict[int, int] = {}
    for event in events:
        if event.action == "candidate.decided" and (event.detail or {}).get("stage") == Decision.Stage.FIRST:
            first_ids[event.pk] = int(event.detail.get("candidate_id") or 0)
    if not first_ids:
        return events
    pending = set(
        Candidate.objects.filter(pk__in=set(first_ids.values()), outcome=Candidate.Outcome.POSSIBLE_MATCH).values_list(
            "pk", flat=True
        )
    )
    viewer_id = getattr(viewer, "pk", None)
    for event in events:
        candidate_id = first_ids.get(event.pk)
        if candidate_id in pending and (viewer_id is None or event.actor_id != viewer_id):
            kept = {k: event.detail[k] for k in ("candidate_id", "search_id", "rank", "stage") if k in event.detail}
            event.detail = {**kept, "withheld": WITHHELD_TEXT}
    return events
