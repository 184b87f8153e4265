"""Retention of closed cases: once a case has been closed longer than RFR_CASE_RETENTION_DAYS, its probes,
faces, searches, candidates, decisions and stored files are deleted; the case row and the audit trail stay.
Run by `manage.py cases purge-expired` and by the housekeeping task `cases.purge_expired`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.models import Candidate, Case, Decision, Probe, ProbeFace, Search, TrackShot, Video

logger = logging.getLogger(__name__)


def cases_past_retention(*, now: datetime | None = None) -> QuerySet[Case]:
    """Closed cases whose probes and results are due for deletion under RFR_CASE_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.RFR_CASE_RETENTION_DAYS)
    return Case.objects.filter(status=Case.Status.CLOSED, closed_at__isnull=False, closed_at__lte=cutoff)


def case_retention_purge(*, case_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """Delete a closed case's probes, faces, footage, searches, candidates (with their decisions) and stored files once
    it has been closed longer than RFR_CASE_RETENTION_DAYS, leaving the case row and the audit trail.

    One transaction per case, with its audit event (counts and reason only, never biometric data). Returns
    the event's detail, or None when the case is not (or no longer) due or holds nothing to delete, so a
    second run, or a run racing another, changes nothing. Files go once the transaction has committed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # Re-checked under the row lock: a case reopened since it was listed is not purged.
        case = cases_past_retention(now=now).select_for_update().filter(pk=case_id).first()
        if case is None:
            return None
        probes = list(Probe.objects.filter(case=case).values_list("pk", "original"))
        faces = list(ProbeFace.objects.filter(probe__case=case).values_list("pk", "aligned_crop"))
        searches = Search.objects.filter(case=case)
        candidates = Candidate.objects.filter(search__case=case)
        # Footage (cases.video): the originals and the tracks' shot crops; frames' faces and tracks cascade.
        videos = list(Video.objects.filter(case=case).values_list("pk", "original"))
        shots = list(TrackShot.objects.filter(track__video__case=case).values_list("pk", "aligned_crop"))
        counts = {
            "probes": len(probes),
            "faces": len(faces),
            "searches": searches.count(),
            "candidates": candidates.count(),
            "decisions": Decision.objects.filter(candidate__search__case=case).count(),
            "videos": len(videos),
        }
        if not any(counts.values()):
            return None
        files = [name for _, name in probes + faces + videos + shots if name]
        # Children first: searches protect their face, faces and searches protect probes and the case.
        candidates.delete()  # decisions cascade with their candidate; their audit events stay
        searches.delete()
        ProbeFace.objects.filter(probe__case=case).delete()
        Probe.objects.filter(case=case).delete()
        Video.objects.filter(case=case).delete()  # after the stills taken from it (RESTRICT)
        days = int(settings.RFR_CASE_RETENTION_DAYS)
        assert case.closed_at is not None  # cases_past_retention selects closed cases with a closing time
        detail: dict[str, Any] = {
            "deleted": counts,
            "files_deleted": len(files),
            "reason": (
                f"retention: case closed on {case.closed_at.date().isoformat()}, more than {days} days"
                f" before {now.date().isoformat()} (RFR_CASE_RETENTION_DAYS={days})"
            ),
            "kept": "the case record and its audit trail, including every decision's audit event",
        }
        audit_event_record(
            action=AuditAction.CASE_RETENTION_PURGED, target=case, case_id=case.pk, detail=detail, actor=None
        )
        transaction.on_commit(lambda: _stored_files_delete(files))
    logger.info("retention purge of case %s: %s", case_id, counts)
    return detail


def _stored_files_delete(names: Sequence[str]) -> None:
    storage = Probe._meta.get_field("original").storage
    for name in names:
        try:
            storage.delete(name)
        except OSError:  # the record is gone either way; a stray file is logged for the operator to remove
            logger.exception("could not delete stored probe file %s", name)


def cases_purge_expired(*, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Purge every case due under the retention rule; returns the audit detail per purged case id."""
    now = now or timezone.now()
    due = list(cases_past_retention(now=now).order_by("pk").values_list("pk", flat=True))
    purged: dict[int, dict[str, Any]] = {}
    for case_id in due:
        detail = case_retention_purge(case_id=case_id, now=now)
        if detail is not None:
            purged[case_id] = detail
    return purged
