"""Reads of the case workbench. Every object is reached through its case, so outsiders get a 404."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

import faceengine
from cases.models import Candidate, Case, Probe, ProbeFace, Search

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
    search = (
        Search.objects.select_related("case", "face", "face__probe", "requested_by")
        .filter(pk=search_id)
        .first()
    )
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
    from search.pipeline import image_limits

    template = candidate_gallery_template(candidate=candidate)
    if template is None:
        return None
    try:
        with template.image.file.open("rb") as handle:
            image = faceengine.decode_image(handle.read(), image_limits())
    except (FileNotFoundError, faceengine.ImageRejected):
        return None
    return align_face(image, np.asarray(template.landmarks, dtype=np.float32))
