"""Writes of the case workbench: probes in, faces found or drawn, searches run, candidates decided.

Every write records its audit event in the same transaction as the change. Views and the API fetch the parent
case with `cases.selectors.case_get_for_user` first (404 for outsiders); these services then apply the rules
that hold whoever calls them: a closed case takes no new searches, a justification is required, a very small
face needs a recorded reason, and a possible match is released only when a second, different reviewer agrees.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from PIL import Image

import faceengine
from audit.services import audit_event_record
from cases.models import Candidate, Case, Decision, Probe, ProbeFace, Search

logger = logging.getLogger(__name__)

NO_FACE_MESSAGE = (
    "No face was found in this image. If you can see a face, draw a box around it and rfr will look again"
    " inside the box."
)
MIN_DRAWN_BOX_PX = 8
MAX_TOP_K = 500  # the gallery index's own ceiling (search.selectors.TOP_K_MAX)


class WorkbenchError(Exception):
    """A refusal a person can act on: a stable `code`, a plain-language `message` and an HTTP status."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def case_require_open(*, case: Case, action: str) -> None:
    if not case.is_open:
        raise WorkbenchError(
            "case_closed",
            f"Case {case.reference} is closed, so {action} is not possible. Ask a supervisor to reopen it.",
            status=409,
        )


def user_is_second_reviewer(*, user: AbstractBaseUser) -> bool:
    groups = list(settings.RFR_SECOND_REVIEWER_GROUPS)
    return bool(getattr(user, "is_active", False)) and user.groups.filter(name__in=groups).exists()  # type: ignore[attr-defined]


# --- Probes ----------------------------------------------------------------------------------------------


def _image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format or "")


def probe_upload(
    *,
    case: Case,
    uploaded_by: AbstractBaseUser,
    data: bytes,
    filename: str,
    source: str,
    lawfully_held: bool,
    description: str = "",
    captured_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Probe:
    """Store the original unchanged, record it, and queue detection. Bad files are refused before storing."""
    from rfr.engine import image_limits

    case_require_open(case=case, action="adding probe images")
    if source not in Probe.Source.values:
        choices = ", ".join(Probe.Source.values)
        raise WorkbenchError("invalid_source", f"Choose where the image came from: one of {choices}.")
    if not lawfully_held:
        raise WorkbenchError(
            "lawful_statement_required",
            "Confirm that the image is lawfully held before uploading it; rfr searches lawfully held images only.",
        )
    try:
        # Decoding here means a wrong-type or corrupt file is refused at once, with nothing stored.
        image = faceengine.decode_image(data, image_limits())
    except faceengine.ImageRejected as exc:
        raise WorkbenchError(exc.code, exc.message) from None
    height, width = image.shape[:2]
    digest = hashlib.sha256(data).hexdigest()
    probe = Probe(
        case=case,
        uploaded_by=uploaded_by,  # type: ignore[misc]
        source=source,
        description=description.strip(),
        captured_at=captured_at,
        lawfully_held=True,
        original_name=(filename or "")[:255],
        image_format=_image_format(data),
        size_bytes=len(data),
        sha256=digest,
        width=width,
        height=height,
    )
    with transaction.atomic():
        probe.original.save("original", ContentFile(data), save=False)
        probe.save()
        audit_event_record(
            action="probe.uploaded",
            actor=uploaded_by,
            target=probe,
            case_id=case.pk,
            request=request,
            detail={
                "sha256": digest,
                "filename": probe.original_name,
                "size_bytes": len(data),
                "source": source,
                "captured_at": captured_at.isoformat() if captured_at else None,
                "lawfully_held": True,
            },
        )
        transaction.on_commit(lambda: _enqueue_probe(probe.pk))
    return probe


def _enqueue_probe(probe_id: int) -> None:
    from cases.tasks import probe_process_task

    probe_process_task.delay(probe_id)


def _set_progress(model: type[Probe] | type[Search], pk: int, progress: int) -> None:
    model.objects.filter(pk=pk).update(progress=progress)


def _encode_png(image_bgr: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode the aligned face crop")
    return buffer.tobytes()


def _probe_face_build(
    *, probe: Probe, index: int, face: faceengine.AnalysedFace, pack_key: str, origin: str
) -> ProbeFace:
    probe_face = ProbeFace(
        probe=probe,
        index=index,
        origin=origin,
        box=[round(float(v), 1) for v in face.box],
        landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        detector_score=round(float(face.score), 4),
        quality=face.quality.to_dict(),
        template=np.asarray(face.template, dtype="<f4").tobytes(),
        pack_key=pack_key,
    )
    probe_face.aligned_crop.save("crop.png", ContentFile(_encode_png(face.aligned)), save=False)
    return probe_face


def _probe_fail(*, probe_id: int, code: str, message: str) -> None:
    with transaction.atomic():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None:
            return
        probe.status = Probe.Status.FAILED
        probe.error_code = code
        probe.error_message = message
        probe.processed_at = timezone.now()
        probe.save(update_fields=["status", "error_code", "error_message", "processed_at"])
        audit_event_record(
            action="probe.failed",
            actor=probe.uploaded_by,
            target=probe,
            case_id=probe.case_id,
            detail={"code": code, "message": message},
        )


def probe_process(*, probe_id: int) -> None:
    """Decode, detect, align, embed and assess every face. Safe to run twice: a second run changes nothing."""
    from rfr.engine import active_engine, image_limits

    with transaction.atomic():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None or probe.status in {Probe.Status.DONE, Probe.Status.FAILED}:
            return  # deleted meanwhile, or a redelivered message for work already finished
        probe.status = Probe.Status.PROCESSING
        probe.progress = 10
        probe.save(update_fields=["status", "progress"])
    try:
        with probe.original.open("rb") as handle:
            data = handle.read()
        image = faceengine.decode_image(data, image_limits())
    except faceengine.ImageRejected as exc:
        _probe_fail(probe_id=probe_id, code=exc.code, message=exc.message)
        return
    except FileNotFoundError:
        _probe_fail(
            probe_id=probe_id,
            code="original_missing",
            message="The stored original could not be read. Upload the image again.",
        )
        return
    _set_progress(Probe, probe_id, 30)
    engine = active_engine()
    try:
        faces = engine.analyse(image)
    except Exception:
        logger.exception("face analysis failed for probe %s", probe_id)
        _probe_fail(
            probe_id=probe_id,
            code="processing_error",
            message="The face engine could not process this image. Try another copy, or report the fault.",
        )
        return
    _set_progress(Probe, probe_id, 80)
    # Numbered left to right, as a person reads the picture.
    faces.sort(key=lambda f: (f.box[0], f.box[1]))
    with transaction.atomic():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None or probe.status == Probe.Status.DONE:
            return
        probe.faces.filter(origin=ProbeFace.Origin.DETECTED).delete()
        rows = [
            _probe_face_build(
                probe=probe, index=i, face=face, pack_key=engine.pack.key, origin=ProbeFace.Origin.DETECTED
            )
            for i, face in enumerate(faces, start=1)
        ]
        ProbeFace.objects.bulk_create(rows)
        probe.status = Probe.Status.DONE
        probe.progress = 100
        probe.pack_key = engine.pack.key
        probe.processed_at = timezone.now()
        probe.error_code = "" if faces else "no_face"
        probe.error_message = "" if faces else NO_FACE_MESSAGE
        probe.save(update_fields=["status", "progress", "pack_key", "processed_at", "error_code", "error_message"])
        audit_event_record(
            action="probe.processed",
            actor=probe.uploaded_by,
            target=probe,
            case_id=probe.case_id,
            detail={"faces": len(rows), "pack_key": engine.pack.key},
        )


def probe_face_from_region(
    *,
    probe: Probe,
    box: Sequence[float],
    drawn_by: AbstractBaseUser,
    request: HttpRequest | None = None,
) -> ProbeFace:
    """Look for a face inside a box a person drew where the detector missed one."""
    from rfr.engine import active_engine, image_limits

    if probe.status != Probe.Status.DONE:
        raise WorkbenchError(
            "probe_not_ready", "Wait until the image has been processed before drawing a box.", status=409
        )
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise WorkbenchError("invalid_box", "Give the box as four numbers: x, y, width and height.") from None
    if w < MIN_DRAWN_BOX_PX or h < MIN_DRAWN_BOX_PX:
        raise WorkbenchError("invalid_box", f"Draw a box at least {MIN_DRAWN_BOX_PX} pixels wide and high.")
    width, height = probe.width or 0, probe.height or 0
    if x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1:
        raise WorkbenchError("invalid_box", f"The box must lie inside the image ({width} x {height} pixels).")
    with probe.original.open("rb") as handle:
        image = faceengine.decode_image(handle.read(), image_limits())
    engine = active_engine()
    found = engine.faces_in_region(image, (x, y, w, h))
    if not found:
        raise WorkbenchError(
            "no_face_in_region",
            "No face was found inside the box you drew. Draw it around the whole head with a little margin,"
            " or use another image of the person.",
        )
    analysed = engine.analyse(image, faces=found[:1])[0]
    with transaction.atomic():
        locked = Probe.objects.select_for_update().get(pk=probe.pk)
        last = locked.faces.order_by("-index").values_list("index", flat=True).first() or 0
        face = _probe_face_build(
            probe=locked,
            index=last + 1,
            face=analysed,
            pack_key=engine.pack.key,
            origin=ProbeFace.Origin.DRAWN,
        )
        face.drawn_box = [round(v, 1) for v in (x, y, w, h)]
        face.drawn_by = drawn_by  # type: ignore[assignment]
        face.save()
        audit_event_record(
            action="probe.face_drawn",
            actor=drawn_by,
            target=face,
            case_id=locked.case_id,
            request=request,
            detail={"probe_id": locked.pk, "drawn_box": face.drawn_box, "found_box": face.box},
        )
    return face


# --- Searches --------------------------------------------------------------------------------------------


def _galleries_resolve(gallery_ids: Sequence[Any]) -> list[Any]:
    from search.models import Gallery

    try:
        wanted = sorted({int(g) for g in gallery_ids})
    except (TypeError, ValueError):
        raise WorkbenchError("invalid_gallery", "Galleries are given by their numeric ids.") from None
    if not wanted:
        raise WorkbenchError("galleries_required", "Choose at least one gallery to search.")
    galleries = list(Gallery.objects.filter(pk__in=wanted).order_by("name"))
    missing = sorted(set(wanted) - {g.pk for g in galleries})
    if missing:
        raise WorkbenchError("unknown_gallery", f"There is no gallery with id {', '.join(map(str, missing))}.")
    return galleries


def search_default_threshold(*, galleries: Sequence[Any]) -> tuple[float, str]:
    """The admin-set default: a gallery's own default if it has one (the strictest of those searched)."""
    gallery_defaults = [
        float(g.default_threshold) for g in galleries if getattr(g, "default_threshold", None) is not None
    ]
    if gallery_defaults:
        return max(gallery_defaults), Search.ThresholdSource.GALLERY
    return float(settings.RFR_DEFAULT_THRESHOLD), Search.ThresholdSource.SETTING


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
    if not justification:
        raise WorkbenchError(
            "justification_required",
            "Say why this search is necessary and proportionate; the justification is recorded and disclosed.",
        )
    small_face_reason = (small_face_reason or "").strip()
    if "very_small" in face.warnings and not small_face_reason:
        raise WorkbenchError(
            "small_face_reason_required",
            "This face is very small, so results are unreliable. Record why you still want to search it.",
        )
    top_k = settings.RFR_DEFAULT_TOP_K if top_k is None else int(top_k)
    if not 1 <= top_k <= MAX_TOP_K:
        raise WorkbenchError("invalid_top_k", f"The number of candidates must be between 1 and {MAX_TOP_K}.")
    galleries = _galleries_resolve(gallery_ids)
    if threshold is None:
        threshold, threshold_source = search_default_threshold(galleries=galleries)
    else:
        threshold, threshold_source = float(threshold), Search.ThresholdSource.USER
        if not -1.0 <= threshold <= 1.0:
            raise WorkbenchError("invalid_threshold", "The threshold is a similarity between -1 and 1.")
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
    )
    with transaction.atomic():
        search.save()
        audit_event_record(
            action="search.requested",
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
                "justification": justification,
                "small_face_reason": small_face_reason,
                "face_warnings": face.warnings,
            },
        )
        transaction.on_commit(lambda: _enqueue_search(search.pk))
    return search


def _enqueue_search(search_id: int) -> None:
    from cases.tasks import search_run_task

    search_run_task.delay(search_id)


def _best_hit_per_subject(hits: Sequence[Any]) -> list[Any]:
    best: dict[tuple[int, int], Any] = {}
    for hit in hits:
        key = (hit.gallery_id, hit.subject_id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.template_id))


def search_execute(*, search_id: int) -> None:
    """Run a queued search and store its candidates; a redelivered message for a finished one is a no-op."""
    try:
        from search.selectors import search_galleries
    except ImportError:  # pragma: no cover - the gallery app has exposed it from services before
        from search.services import search_galleries  # type: ignore[attr-defined,no-redef]

    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).select_related("face").first()
        if search is None or search.status in {Search.Status.DONE, Search.Status.FAILED}:
            return
        search.status = Search.Status.PROCESSING
        search.progress = 20
        search.started_at = timezone.now()
        search.save(update_fields=["status", "progress", "started_at"])
    template = np.frombuffer(bytes(search.face.template), dtype="<f4").astype(np.float32)
    try:
        hits = search_galleries(
            template=template,
            pack_key=search.pack_key,
            gallery_ids=search.gallery_ids,
            # A subject with several gallery images appears once, by its best image: fetch some spare.
            top_k=min(MAX_TOP_K, search.top_k * 3),
            threshold=search.threshold,
        )
        hits = _best_hit_per_subject(hits)[: search.top_k]
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
                    action="search.failed",
                    actor=search.requested_by,
                    target_type="cases.search",
                    target_id=search_id,
                    case_id=search.case_id,
                    detail={"code": "search_error"},
                )
        return
    _set_progress(Search, search_id, 80)
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        if search is None or search.status == Search.Status.DONE:
            return
        search.candidates.all().delete()  # a run cut short before commit left none; this is belt and braces
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
            action="search.completed",
            actor=search.requested_by,
            target=search,
            case_id=search.case_id,
            detail={"candidates": len(hits), "pack_key": search.pack_key},
        )


def search_candidates_view_record(
    *, search: Search, viewer: AbstractBaseUser, request: HttpRequest | None = None, via: str = "page"
) -> None:
    """Viewing a candidate list is itself an event on the record."""
    with transaction.atomic():
        audit_event_record(
            action="search.candidates_viewed",
            actor=viewer,
            target=search,
            case_id=search.case_id,
            request=request,
            detail={"via": via, "candidates": search.candidates.count()},
        )


# --- Decisions -------------------------------------------------------------------------------------------


def candidate_decision_record(
    *,
    candidate: Candidate,
    reviewer: AbstractBaseUser,
    decision: str,
    rationale: str,
    request: HttpRequest | None = None,
) -> Decision:
    """Record a person's assessment; the second, independent one decides if a possible match is released."""
    if decision not in Decision.Verdict.values:
        choices = ", ".join(Decision.Verdict.values)
        raise WorkbenchError("invalid_decision", f"The decision must be one of: {choices}.")
    rationale = (rationale or "").strip()
    if not rationale:
        raise WorkbenchError("rationale_required", "Give the reasons for your decision; they are recorded.")
    with transaction.atomic():
        locked = Candidate.objects.select_for_update().select_related("search").get(pk=candidate.pk)
        previous = list(locked.decisions.all())
        if any(d.reviewer_id == reviewer.pk for d in previous):
            raise WorkbenchError(
                "already_decided",
                "You have already recorded a decision on this candidate. A second review must come from"
                " a different person.",
                status=409,
            )
        if len(previous) >= 2:
            raise WorkbenchError(
                "already_reviewed", "This candidate already has its assessment and second review.", status=409
            )
        if previous:
            first = previous[0]
            if first.decision != Decision.Verdict.POSSIBLE_MATCH:
                raise WorkbenchError(
                    "review_not_needed",
                    "Only a possible match goes to a second review; this candidate was assessed as"
                    f" '{first.get_decision_display()}'.",
                    status=409,
                )
            if not user_is_second_reviewer(user=reviewer):
                groups = " or ".join(settings.RFR_SECOND_REVIEWER_GROUPS)
                raise WorkbenchError(
                    "second_reviewer_required",
                    f"The second review must be given by a {groups}; ask one to review this candidate.",
                    status=403,
                )
            stage = Decision.Stage.SECOND
            outcome = (
                Candidate.Outcome.RELEASED
                if decision == Decision.Verdict.POSSIBLE_MATCH
                else Candidate.Outcome.DISPUTED
            )
        else:
            stage = Decision.Stage.FIRST
            outcome = {
                Decision.Verdict.POSSIBLE_MATCH: Candidate.Outcome.POSSIBLE_MATCH,
                Decision.Verdict.NOT_A_MATCH: Candidate.Outcome.NOT_A_MATCH,
                Decision.Verdict.INCONCLUSIVE: Candidate.Outcome.INCONCLUSIVE,
            }[Decision.Verdict(decision)]
        record = Decision.objects.create(
            candidate=locked,
            reviewer=reviewer,
            stage=stage,  # type: ignore[misc]
            decision=decision,
            rationale=rationale,
        )
        locked.outcome = outcome
        locked.save(update_fields=["outcome"])
        audit_event_record(
            action="candidate.decided",
            actor=reviewer,
            target=record,
            case_id=locked.search.case_id,
            request=request,
            detail={
                "candidate_id": locked.pk,
                "search_id": locked.search_id,
                "rank": locked.rank,
                "subject_ref": locked.subject_ref,
                "stage": stage,
                "decision": decision,
                "outcome": outcome,
                "rationale": rationale,
            },
        )
    candidate.outcome = outcome
    return record


def search_report_download_record(
    *, search: Search, user: AbstractBaseUser, sha256: str, request: HttpRequest | None = None
) -> None:
    with transaction.atomic():
        audit_event_record(
            action="search.report_downloaded",
            actor=user,
            target=search,
            case_id=search.case_id,
            request=request,
            detail={"report_sha256": sha256},
        )


# --- Retention -------------------------------------------------------------------------------------------


def case_retention_purge(*, case_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """Delete a closed case's probes, faces, searches, candidates (with their decisions) and stored files once
    it has been closed longer than RFR_CASE_RETENTION_DAYS, leaving the case row and the audit trail.

    One transaction per case, with its audit event (counts and reason only, never biometric data). Returns
    the event's detail, or None when the case is not (or no longer) due or holds nothing to delete, so a
    second run, or a run racing another, changes nothing. Files go once the transaction has committed.
    """
    from cases.workbench_selectors import cases_past_retention

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
        counts = {
            "probes": len(probes),
            "faces": len(faces),
            "searches": searches.count(),
            "candidates": candidates.count(),
            "decisions": Decision.objects.filter(candidate__search__case=case).count(),
        }
        if not any(counts.values()):
            return None
        files = [name for _, name in probes + faces if name]
        # Children first: searches protect their face, faces and searches protect probes and the case.
        candidates.delete()  # decisions cascade with their candidate; their audit events stay
        searches.delete()
        ProbeFace.objects.filter(probe__case=case).delete()
        Probe.objects.filter(case=case).delete()
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
        audit_event_record(action="case.retention_purged", target=case, case_id=case.pk, detail=detail, actor=None)
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
    from cases.workbench_selectors import cases_past_retention

    now = now or timezone.now()
    due = list(cases_past_retention(now=now).order_by("pk").values_list("pk", flat=True))
    purged: dict[int, dict[str, Any]] = {}
    for case_id in due:
        detail = case_retention_purge(case_id=case_id, now=now)
        if detail is not None:
            purged[case_id] = detail
    return purged
