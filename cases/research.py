"""Re-search: a search kept searching is re-run against its galleries' new enrolments only.

An investigator marks a finished search "keep searching" (`search_keep_searching_start`). The housekeeping
task (`research_due`, Celery beat, rfr.settings CELERY_BEAT_SCHEDULE) then re-runs each kept search whose
galleries gained templates of the search's pack since its last run: only those templates are compared (ids
above the watch's mark; template ids only grow), with the search's own threshold and score normalisation.
Subjects already among its candidates are left out; the rest above the threshold become new candidates after
the existing ranks, flagged new since the previous run, in the run's transaction with its `SearchRun` row,
its audit event and the owner's notification.

It stops, on the record, when the case closes, when one of the search's candidates is released as a possible
match, or when a person stops it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Candidate, Search, SearchRun, SearchWatch
from cases.notifications import notifications_after_research
from rfr.errors import Conflict
from search.cohorts import RAW, score_cohort_get, score_cohort_normaliser
from search.models import Template

logger = logging.getLogger(__name__)


def _templates_of(search: Search) -> Any:
    return Template.objects.filter(gallery_id__in=search.gallery_ids, pack_key=search.pack_key)


def search_keep_searching_start(
    *, search: Search, user: AbstractBaseUser, request: HttpRequest | None = None
) -> SearchWatch:
    """Keep `search` searching as its galleries grow. Callers fetch it with SEARCH_CASE (cases.access)."""
    case_require_open(case=search.case, action="keeping a search searching")
    if search.status != Search.Status.DONE:
        raise Conflict("search_not_finished", "A search can be kept searching once it has finished.")
    if search.candidates.filter(outcome=Candidate.Outcome.RELEASED).exists():
        raise Conflict(
            "search_has_released_match",
            "A possible match from this search has been released, so it is not searched again.",
        )
    with transaction.atomic():
        watch = SearchWatch.objects.select_for_update().filter(search=search).first()
        if watch is not None and watch.active:
            raise Conflict("already_keep_searching", "This search is already kept searching.")
        if watch is None:
            # Everything enrolled before the search ran was compared by it; later templates are new to it.
            first_mark = _templates_of(search).filter(created_at__lte=search.started_at or search.created_at)
            watch = SearchWatch.objects.create(
                search=search,
                started_by=user,  # type: ignore[misc]
                templates_up_to=first_mark.aggregate(mark=Max("pk"))["mark"] or 0,
            )
        else:  # started again: the mark stays, so what was enrolled meanwhile is compared at the next run
            watch.stopped_at, watch.stop_reason, watch.started_by = None, "", user  # type: ignore[assignment]
            watch.save(update_fields=["stopped_at", "stop_reason", "started_by"])
        audit_event_record(
            action=AuditAction.SEARCH_KEEP_SEARCHING_STARTED,
            actor=user,
            target=search,
            case_id=search.case_id,
            request=request,
            detail={"search_id": search.pk, "templates_up_to": watch.templates_up_to, "galleries": search.galleries},
        )
    return watch


def _stop(watch: SearchWatch, reason: str, actor: AbstractBaseUser | None, request: HttpRequest | None) -> None:
    watch.stopped_at, watch.stop_reason = timezone.now(), reason
    watch.save(update_fields=["stopped_at", "stop_reason"])
    audit_event_record(
        action=AuditAction.SEARCH_KEEP_SEARCHING_STOPPED,
        actor=actor,
        target_type="cases.search",
        target_id=watch.search_id,
        case_id=watch.search.case_id,
        request=request,
        detail={"search_id": watch.search_id, "reason": reason, "runs": watch.search.runs.count()},
    )


def search_keep_searching_stop(*, search: Search, user: AbstractBaseUser, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        watch = SearchWatch.objects.select_for_update().select_related("search").filter(search=search).first()
        if watch is None or not watch.active:
            raise Conflict("not_keep_searching", "This search is not being kept searching.")
        _stop(watch, SearchWatch.Stop.PERSON, user, request)


def search_last_run_at(*, search: Search) -> datetime | None:
    last = search.runs.order_by("-number").first()
    return last.started_at if last else (search.started_at or search.created_at)


def research_run(*, search_id: int) -> SearchRun | None:
    """Re-run one kept search on its galleries' new templates, or stop it if it should stop. None when nothing
    ran (stopped, or nothing new). Safe to run twice: the mark moves with the run, in its transaction."""
    with transaction.atomic():
        watch = (
            SearchWatch.objects.select_for_update()
            .select_related("search", "search__case", "search__case__owner", "search__face")
            .filter(search_id=search_id, stopped_at__isnull=True)
            .first()
        )
        if watch is None:
            return None
        search = watch.search
        if not search.case.is_open:
            _stop(watch, SearchWatch.Stop.CASE_CLOSED, None, None)
            return None
        if search.candidates.filter(outcome=Candidate.Outcome.RELEASED).exists():
            _stop(watch, SearchWatch.Stop.RELEASED, None, None)
            return None
        # Locked like search_run's hits, so a gallery removal in progress finishes first or waits for this run.
        new = list(
            _templates_of(search)
            .select_for_update()
            .filter(pk__gt=watch.templates_up_to)
            .order_by("pk")
            .values_list("pk", "embedding", "subject_id", "gallery_id", "image_id")
        )
        if not new:
            return None
        started = timezone.now()
        since = search_last_run_at(search=search)
        query = np.frombuffer(bytes(search.face.template), dtype="<f4").astype(np.float32)
        gallery = np.stack([np.frombuffer(bytes(row[1]), dtype="<f4") for row in new]).astype(np.float32)
        scores = gallery @ query
        if search.score_normalisation != RAW:
            normaliser = score_cohort_normaliser(score_cohort_get(label=search.score_normalisation))
            scores = normaliser.normalise(scores, normaliser.statistics(query), normaliser.statistics(gallery))[0]
        known = set(search.candidates.values_list("gallery_id", "subject_id"))
        best: dict[tuple[int, int], tuple[float, int, int | None]] = {}
        for (template_id, _, subject_id, gallery_id, image_id), score in zip(new, scores.tolist(), strict=True):
            key = (gallery_id, subject_id)
            if score < search.threshold or key in known:
                continue
            if key not in best or score > best[key][0]:
                best[key] = (float(score), template_id, image_id)
        hits = sorted(best.items(), key=lambda item: (-item[1][0], item[1][1]))[: search.top_k]
        refs = dict(
            Template.objects.filter(pk__in=[hit[1][1] for hit in hits]).values_list("pk", "subject__external_ref")
        )
        names = {int(g["id"]): str(g["name"]) for g in search.galleries}
        number = (search.runs.aggregate(last=Max("number"))["last"] or 1) + 1
        run = SearchRun.objects.create(
            search=search,
            number=number,
            started_at=started,
            finished_at=timezone.now(),
            templates_after=watch.templates_up_to,
            templates_up_to=new[-1][0],
            templates_compared=len(new),
            new_candidates=len(hits),
        )
        next_rank = (search.candidates.aggregate(last=Max("rank"))["last"] or 0) + 1
        Candidate.objects.bulk_create(
            [
                Candidate(
                    search=search,
                    rank=rank,
                    score=round(score, 6),
                    gallery_id=gallery_id,
                    gallery_name=names.get(gallery_id, ""),
                    subject_id=subject_id,
                    subject_ref=refs.get(template_id, ""),
                    template_id=template_id,
                    image_id=image_id,
                    found_by_run=run,
                    new_since=since,
                )
                for rank, ((gallery_id, subject_id), (score, template_id, image_id)) in enumerate(hits, start=next_rank)
            ]
        )
        watch.templates_up_to = run.templates_up_to
        watch.save(update_fields=["templates_up_to"])
        audit_event_record(
            action=AuditAction.SEARCH_RESEARCHED,
            target=search,
            case_id=search.case_id,
            detail={
                "run": number,
                "templates_after": run.templates_after,
                "templates_up_to": run.templates_up_to,
                "templates_compared": len(new),
                "new_candidates": len(hits),
                "new_since": since.isoformat() if since else None,
                "threshold": search.threshold,
                "score_normalisation": search.score_normalisation,
            },
        )
        notifications_after_research(search=search, new_candidates=len(hits), since=since)
    return run


def research_due() -> dict[str, int]:
    """The housekeeping round: each kept search is re-run if its galleries grew, or stopped if it should stop."""
    report = {"kept": 0, "runs": 0, "new_candidates": 0}
    for search_id in SearchWatch.objects.filter(stopped_at__isnull=True).values_list("search_id", flat=True):
        report["kept"] += 1
        run = research_run(search_id=search_id)
        if run is not None:
            report["runs"] += 1
            report["new_candidates"] += run.new_candidates
    return report


def searches_with_runs(searches: QuerySet[Search]) -> QuerySet[Search]:
    """`searches` with `reruns` (how many re-runs) and `kept_searching` (whether it is kept searching now), for
    the case's list of searches, in the same query."""
    active = SearchWatch.objects.filter(search=OuterRef("pk"), stopped_at__isnull=True)
    return searches.annotate(reruns=Count("runs", distinct=True), kept_searching=Exists(active))


def search_runs_history(*, search: Search) -> list[dict[str, Any]]:
    """The search's runs for its page: the first (the search itself), then each re-run."""
    first = search.candidates.filter(found_by_run__isnull=True).count()
    history: list[dict[str, Any]] = [
        {
            "number": 1,
            "when": search.finished_at or search.created_at,
            "what": "The search",
            "compared": "every template of the galleries",
            "new_candidates": first,
        }
    ]
    for run in search.runs.order_by("number"):
        history.append(
            {
                "number": run.number,
                "when": run.finished_at,
                "what": "Re-search on new enrolments",
                "compared": f"{run.templates_compared} template{'s' if run.templates_compared != 1 else ''}"
                f" enrolled since run {run.number - 1}",
                "new_candidates": run.new_candidates,
            }
        )
    return history
