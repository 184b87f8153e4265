"""Searches: a person asks to search one probe face against chosen galleries, and gets ranked candidates.

`search_request` records who searches what, why and with which settings, then queues `search_run` on the
search queue. `search_run` asks the gallery side (search.execution) for the best hits, keeps each subject's
best image, and stores them as Candidate rows, never as identifications. Viewing a candidate list is itself
recorded. Each change commits with its audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Candidate, Case, ProbeFace, Search
from rfr.errors import InvalidInput, NotFound
from rfr.limits import text_limit_check
from rfr.queues import TaskName, queue_require_available, task_enqueue_on_commit
from search.accuracy import evaluation_run_for_scores
from search.cohorts import RAW, score_cohort_active, score_cohort_get, score_cohort_normaliser
from search.execution import TOP_K_MAX, SearchHit, search_galleries
from search.models import Gallery, Template
from search.thresholds import SOURCE_GALLERY, SOURCE_SETTING, SOURCE_SYSTEM, threshold_for_search

logger = logging.getLogger(__name__)


def search_default_threshold(*, pack_key: str | None = None, galleries: Sequence[Gallery] = ()) -> float:
    """The threshold a search uses where the investigator sets none: the galleries' own defaults or the pack's
    system default (search.thresholds), else the setting RFR_DEFAULT_THRESHOLD."""
    if pack_key is None:
        return float(settings.RFR_DEFAULT_THRESHOLD)
    return threshold_for_search(pack_key=pack_key, galleries=galleries).value


_THRESHOLD_SOURCES = {
    SOURCE_SETTING: Search.ThresholdSource.SETTING,
    SOURCE_SYSTEM: Search.ThresholdSource.SYSTEM,
    SOURCE_GALLERY: Search.ThresholdSource.GALLERY,
}


def _galleries_resolve(gallery_ids: Sequence[Any]) -> list[Gallery]:
    try:
        wanted = sorted({int(g) for g in gallery_ids})
    except (TypeError, ValueError):
        raise InvalidInput("invalid_gallery", "Galleries are given by their numeric ids.") from None
    if not wanted:
        raise InvalidInput("galleries_required", "Choose at least one gallery to search.")
    galleries = list(Gallery.objects.filter(pk__in=wanted).order_by("name"))
    missing = sorted(set(wanted) - {g.pk for g in galleries})
    if missing:
        raise NotFound("unknown_gallery", f"There is no gallery with id {', '.join(map(str, missing))}.")
    return galleries


def search_request(
    *,
    face: ProbeFace,
    requested_by: AbstractBaseUser,
    gallery_ids: Sequence[Any],
    justification: str,
    top_k: int | None = None,
    threshold: float | None = None,
    small_face_reason: str = "",
    request: HttpRequest | None = None,
) -> Search:
    """Record who searches what, why and how, then queue the search."""
    case = face.probe.case
    case_require_open(case=case, action="a new search")
    justification = (justification or "").strip()
    text_limit_check("justification", justification)
    text_limit_check("small_face_reason", (small_face_reason or "").strip())
    if not justification:
        raise InvalidInput(
            "justification_required",
            "Say why this search is necessary and proportionate; the justification is recorded and disclosed.",
        )
    small_face_reason = (small_face_reason or "").strip()
    if "very_small" in face.warnings and not small_face_reason:
        raise InvalidInput(
            "small_face_reason_required",
            "This face is very small, so results are unreliable. Record why you still want to search it.",
        )
    top_k = settings.RFR_DEFAULT_TOP_K if top_k is None else int(top_k)
    if not 1 <= top_k <= TOP_K_MAX:
        raise InvalidInput("invalid_top_k", f"The number of candidates must be between 1 and {TOP_K_MAX}.")
    galleries = _galleries_resolve(gallery_ids)
    # With a score cohort active for the face's pack, scores are normalised against it, and the default
    # threshold is the cohort's own (calibrated to the raw default's false-match rate); a threshold the
    # investigator gives is then read on the normalised scale.
    cohort = score_cohort_active(pack_key=face.pack_key)
    score_normalisation = cohort.normalisation_label if cohort else RAW
    if threshold is None:
        if cohort is not None:
            # The galleries' and the system defaults are on the raw scale; the cohort carries its own,
            # calibrated to the same false-match rate.
            threshold, threshold_source = cohort.threshold, Search.ThresholdSource.SYSTEM
        else:
            choice = threshold_for_search(pack_key=face.pack_key, galleries=galleries)
            threshold, threshold_source = choice.value, _THRESHOLD_SOURCES[choice.source]
    else:
        threshold, threshold_source = float(threshold), Search.ThresholdSource.USER
        if not -1.0 <= threshold <= 1.0:
            raise InvalidInput("invalid_threshold", "The threshold is a similarity between -1 and 1.")
    # With the broker down, refuse now with nothing stored, rather than store work that waits for the re-queue.
    queue_require_available()
    search = Search(
        case=case,
        face=face,
        requested_by=requested_by,  # type: ignore[misc]
        galleries=[{"id": g.pk, "name": g.name} for g in galleries],
        top_k=top_k,
        threshold=threshold,
        threshold_source=threshold_source,
        justification=justification,
        small_face_reason=small_face_reason,
        pack_key=face.pack_key,
        evaluation_run=evaluation_run_for_scores(
            pack_key=face.pack_key, normalisation=score_normalisation, threshold=threshold
        ),
        score_normalisation=score_normalisation,
        heartbeat_at=timezone.now(),
    )
    with transaction.atomic():
        search.save()
        audit_event_record(
            action=AuditAction.SEARCH_REQUESTED,
            actor=requested_by,
            target=search,
            case_id=case.pk,
            request=request,
            detail={
                "probe_id": face.probe_id,
                "face_id": face.pk,
                "galleries": search.galleries,
                "top_k": top_k,
                "threshold": threshold,
                "threshold_source": threshold_source,
                "pack_key": search.pack_key,
                "evaluation_run": search.evaluation_run_id,
                "score_normalisation": score_normalisation,
                "justification": justification,
                "small_face_reason": small_face_reason,
                "face_warnings": face.warnings,
            },
        )
        task_enqueue_on_commit(
            TaskName.SEARCH_RUN, search.pk, on_failure=lambda: search_queue_failed(search_id=search.pk)
        )
    return search


def search_queue_failed(*, search_id: int) -> None:
    """The broker refused the task after the search committed: clear its heartbeat so the re-queue task
    (cases.housekeeping) sends it at its next round rather than after the usual wait."""
    Search.objects.filter(pk=search_id, status=Search.Status.PENDING).update(heartbeat_at=None)


def _best_hit_per_subject(hits: Sequence[SearchHit]) -> list[SearchHit]:
    best: dict[tuple[int, int], SearchHit] = {}
    for hit in hits:
        key = (hit.gallery_id, hit.subject_id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.template_id))


def search_run(*, search_id: int) -> None:
    """Run a queued search and store its candidates; a redelivered message for a finished one is a no-op.

    A transient database error propagates, so the task is retried; any other fault marks the search failed.
    """
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).select_related("face").first()
        if search is None or search.status in {Search.Status.DONE, Search.Status.FAILED}:
            return
        search.status = Search.Status.PROCESSING
        search.progress = 20
        search.started_at = search.heartbeat_at = timezone.now()
        search.save(update_fields=["status", "progress", "started_at", "heartbeat_at"])
    template = np.frombuffer(bytes(search.face.template), dtype="<f4").astype(np.float32)
    try:
        normaliser = (
            None
            if search.score_normalisation == RAW
            else score_cohort_normaliser(score_cohort_get(label=search.score_normalisation))
        )
        hits = search_galleries(
            template=template,
            pack_key=search.pack_key,
            gallery_ids=search.gallery_ids,
            # A subject with several gallery images appears once, by its best image: fetch some spare.
            top_k=min(TOP_K_MAX, search.top_k * 3),
            threshold=search.threshold,
            normaliser=normaliser,
        )
        hits = _best_hit_per_subject(hits)[: search.top_k]
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries, and the search stays "processing" meanwhile
    except Exception:
        logger.exception("search %s failed", search_id)
        with transaction.atomic():
            updated = Search.objects.filter(pk=search_id).update(
                status=Search.Status.FAILED,
                error_code="search_error",
                error_message="The search could not be completed. Try again, or report the fault.",
                finished_at=timezone.now(),
            )
            if updated:
                audit_event_record(
                    action=AuditAction.SEARCH_FAILED,
                    actor=search.requested_by,
                    target_type="cases.search",
                    target_id=search_id,
                    case_id=search.case_id,
                    detail={"code": "search_error"},
                )
        return
    Search.objects.filter(pk=search_id).update(progress=80, heartbeat_at=timezone.now())
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        if search is None or search.status == Search.Status.DONE:
            return
        search.candidates.all().delete()  # a run cut short before commit left none; this is belt and braces
        # Erasure: a gallery entry removed since its hit was checked never becomes a candidate. Locking the hits'
        # templates makes a removal in progress finish first (its rows are then gone), or wait for this commit
        # and then mark what it inserted (search.galleries marks candidates after deleting the templates).
        held = set(
            Template.objects.select_for_update()
            .filter(pk__in=[hit.template_id for hit in hits])
            .values_list("pk", flat=True)
        )
        hits = [hit for hit in hits if hit.template_id in held]
        Candidate.objects.bulk_create(
            [
                Candidate(
                    search=search,
                    rank=rank,
                    score=round(float(hit.score), 6),
                    gallery_id=hit.gallery_id,
                    gallery_name=hit.gallery_name,
                    subject_id=hit.subject_id,
                    subject_ref=hit.subject_ref,
                    template_id=hit.template_id,
                    image_id=hit.image_id,
                )
                for rank, hit in enumerate(hits, start=1)
            ]
        )
        search.status = Search.Status.DONE
        search.progress = 100
        search.finished_at = timezone.now()
        search.save(update_fields=["status", "progress", "finished_at"])
        audit_event_record(
            action=AuditAction.SEARCH_COMPLETED,
            actor=search.requested_by,
            target=search,
            case_id=search.case_id,
            detail={
                "candidates": len(hits),
                "pack_key": search.pack_key,
                "score_normalisation": search.score_normalisation,
            },
        )


def search_candidates_view_record(
    *,
    search: Search,
    viewer: AbstractBaseUser,
    request: HttpRequest | None = None,
    via: str = "page",
    thumbnails: Sequence[int] | None = None,
) -> None:
    """Viewing a candidate list is itself an event on the record; `thumbnails` names the candidates whose face
    thumbnails the list shows, which this one event covers (cases.candidate_list)."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.SEARCH_CANDIDATES_VIEWED,
            actor=viewer,
            target=search,
            case_id=search.case_id,
            request=request,
            detail={
                "via": via,
                "candidates": search.candidates.count(),
                **({"thumbnails": list(thumbnails)} if thumbnails is not None else {}),
            },
        )


def searches_of_case(*, case: Case) -> QuerySet[Search]:
    return case.searches.select_related("requested_by", "face", "face__probe")


def candidates_of_search(*, search: Search) -> QuerySet[Candidate]:
    return (
        search.candidates.select_related("search__evaluation_run")
        .prefetch_related("decisions", "decisions__reviewer")
        .order_by("rank")
    )
