"""Server-rendered pages of the case workbench. Thin: fetch through the case (404 for outsiders), then call
services.

Long work (processing an image, running a search) shows a progress bar that static/js/workbench.js polls from
the small JSON status endpoints here; without JavaScript the page offers a "Check again" link instead.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import audit_event_record
from cases import workbench_selectors as selectors
from cases import workbench_services as services
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Decision, Probe, ProbeFace, Search
from cases.workbench_api import candidate_label
from cases.workbench_services import WorkbenchError
from faceengine.quality import WARNING_TEXT

IMAGE_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


def _image_response(field_file: Any, content_type: str | None = None) -> FileResponse:
    try:
        handle = field_file.open("rb")
    except FileNotFoundError:
        raise Http404("The image is no longer held.") from None
    content_type = content_type or mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


def _png_response(image_bgr: np.ndarray) -> HttpResponse:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover
        raise Http404("The image could not be rendered.")
    response = HttpResponse(buffer.tobytes(), content_type="image/png")
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


def _face_view(face: ProbeFace) -> dict[str, Any]:
    return {
        "face": face,
        "warnings": [(w, WARNING_TEXT.get(w, w)) for w in face.warnings],
        "very_small": "very_small" in face.warnings,
    }


# --- Case workbench: probe list and upload ----------------------------------------------------------------


@login_required
@require_GET
def case_workbench(request: HttpRequest, case_id: int) -> HttpResponse:
    case = selectors._case_check(user=request.user, case_id=case_id, perm=selectors.VIEW)
    return render(
        request,
        "cases/workbench/case_workbench.html",
        {
            "case": case,
            "probes": selectors.probes_of_case(case=case),
            "searches": selectors.searches_of_case(case=case)[:50],
            "sources": Probe.Source.choices,
            "can_search": _can(request, case_id),
        },
    )


def _can(request: HttpRequest, case_id: int, perm: str = selectors.SEARCH) -> bool:
    try:
        selectors._case_check(user=request.user, case_id=case_id, perm=perm)
    except (Http404, PermissionDenied):
        return False
    return True


def _parse_capture_time(raw: str) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    value = parse_datetime(raw)
    if value is None:
        raise WorkbenchError("invalid_capture_time", "Give the capture time as a date and time, or leave it blank.")
    return make_aware(value) if is_naive(value) else value


@login_required
@require_POST
def probe_upload(request: HttpRequest, case_id: int) -> HttpResponse:
    case = selectors._case_check(user=request.user, case_id=case_id, perm=selectors.SEARCH)
    back = reverse("workbench:case", args=[case.pk])
    files = request.FILES.getlist("images")
    if not files:
        messages.error(request, "Choose at least one image to upload.")
        return HttpResponseRedirect(back)
    try:
        captured_at = _parse_capture_time(request.POST.get("captured_at", ""))
    except WorkbenchError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(back)
    stored: list[Probe] = []
    # Each file stands alone: one bad file is reported and the good ones are kept.
    for upload in files:
        try:
            stored.append(
                services.probe_upload(
                    case=case,
                    uploaded_by=request.user,  # type: ignore[arg-type]
                    data=upload.read(),
                    filename=upload.name or "",
                    source=request.POST.get("source", ""),
                    description=request.POST.get("description", ""),
                    captured_at=captured_at,
                    lawfully_held=request.POST.get("lawfully_held") == "on",
                    request=request,
                )
            )
        except WorkbenchError as exc:
            messages.error(request, f"{upload.name}: {exc.message}")
    if len(stored) == 1:
        messages.success(request, f"{stored[0].original_name} uploaded; looking for faces.")
        return HttpResponseRedirect(reverse("workbench:probe", args=[stored[0].pk]))
    if stored:
        messages.success(request, f"{len(stored)} images uploaded; looking for faces.")
    return HttpResponseRedirect(back)


# --- Probe: faces, drawn boxes ----------------------------------------------------------------------------


@login_required
@require_GET
def probe_detail(request: HttpRequest, probe_id: int) -> HttpResponse:
    probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id)
    faces = list(probe.faces.all())
    return render(
        request,
        "cases/workbench/probe_detail.html",
        {
            "case": probe.case,
            "probe": probe,
            "faces": [_face_view(f) for f in faces],
            "finished": probe.status in {Probe.Status.DONE, Probe.Status.FAILED},
            "can_search": _can(request, probe.case_id),
        },
    )


@login_required
@require_GET
def probe_status(request: HttpRequest, probe_id: int) -> JsonResponse:
    probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id)
    return JsonResponse(
        {
            "id": probe.pk,
            "status": probe.status,
            "status_text": probe.get_status_display(),
            "progress": probe.progress,
            "faces": probe.faces.count(),
            "error": {"code": probe.error_code, "message": probe.error_message} if probe.error_code else None,
        }
    )


@login_required
@require_GET
def probe_image(request: HttpRequest, probe_id: int) -> FileResponse:
    probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id)
    return _image_response(probe.original, f"image/{probe.image_format.lower() or 'octet-stream'}")


@login_required
@require_POST
def probe_face_draw(request: HttpRequest, probe_id: int) -> HttpResponse:
    probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id, perm=selectors.SEARCH)
    try:
        box = [float(request.POST.get(k, "")) for k in ("x", "y", "w", "h")]
        face = services.probe_face_from_region(probe=probe, box=box, drawn_by=request.user, request=request)  # type: ignore[arg-type]
    except ValueError:
        messages.error(request, "Give the box as four numbers: x, y, width and height, in image pixels.")
    except WorkbenchError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Face {face.index} found inside the box you drew.")
    return HttpResponseRedirect(reverse("workbench:probe", args=[probe.pk]) + "#faces")


@login_required
@require_GET
def face_crop(request: HttpRequest, face_id: int) -> FileResponse:
    face = selectors.face_get_for_user(user=request.user, face_id=face_id)
    return _image_response(face.aligned_crop, "image/png")


# --- Search ----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def face_search(request: HttpRequest, face_id: int) -> HttpResponse:
    face = selectors.face_get_for_user(user=request.user, face_id=face_id, perm=selectors.SEARCH)
    galleries = list(selectors.galleries_searchable())
    form: dict[str, Any] = {
        "galleries": [str(g.pk) for g in galleries] if len(galleries) == 1 else [],
        "top_k": settings.RFR_DEFAULT_TOP_K,
        "threshold": "",
        "justification": "",
        "small_face_reason": "",
    }
    error: WorkbenchError | None = None
    if request.method == "POST":
        form = {
            "galleries": request.POST.getlist("galleries"),
            "top_k": request.POST.get("top_k", "").strip(),
            "threshold": request.POST.get("threshold", "").strip(),
            "justification": request.POST.get("justification", ""),
            "small_face_reason": request.POST.get("small_face_reason", ""),
        }
        try:
            try:
                top_k = int(form["top_k"]) if form["top_k"] else None
                threshold = float(form["threshold"]) if form["threshold"] else None
            except ValueError:
                raise WorkbenchError(
                    "invalid_number", "The number of candidates and the threshold must be numbers."
                ) from None
            search = services.search_request(
                face=face,
                requested_by=request.user,  # type: ignore[arg-type]
                gallery_ids=form["galleries"],
                top_k=top_k,
                threshold=threshold,
                justification=form["justification"],
                small_face_reason=form["small_face_reason"],
                request=request,
            )
        except WorkbenchError as exc:
            error = exc
        else:
            return HttpResponseRedirect(reverse("workbench:search", args=[search.pk]))
    default_threshold, _ = services.search_default_threshold(galleries=galleries)
    return render(
        request,
        "cases/workbench/face_search.html",
        {
            "case": face.probe.case,
            "probe": face.probe,
            **_face_view(face),
            "galleries": galleries,
            "form": form,
            "error": error,
            "default_threshold": settings.RFR_DEFAULT_THRESHOLD,
            "default_threshold_all": default_threshold,
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def search_detail(request: HttpRequest, search_id: int) -> HttpResponse:
    search = selectors.search_get_for_user(user=request.user, search_id=search_id)
    candidates: list[Candidate] = []
    if search.status == Search.Status.DONE:
        candidates = list(selectors.candidates_of_search(search=search))
        services.search_candidates_view_record(search=search, viewer=request.user, request=request)  # type: ignore[arg-type]
    return render(
        request,
        "cases/workbench/search_detail.html",
        {
            "case": search.case,
            "search": search,
            "face": search.face,
            "candidates": [(c, candidate_label(c)) for c in candidates],
            "finished": search.status in {Search.Status.DONE, Search.Status.FAILED},
            "wording": POSSIBLE_MATCH_WORDING,
        },
    )


@login_required
@require_GET
def search_status(request: HttpRequest, search_id: int) -> JsonResponse:
    search = selectors.search_get_for_user(user=request.user, search_id=search_id)
    return JsonResponse(
        {
            "id": search.pk,
            "status": search.status,
            "status_text": search.get_status_display(),
            "progress": search.progress,
            "error": {"code": search.error_code, "message": search.error_message} if search.error_code else None,
        }
    )


@login_required
@require_GET
def search_report(request: HttpRequest, search_id: int) -> HttpResponse:
    from cases.report import search_report_pdf

    search = selectors.search_get_for_user(user=request.user, search_id=search_id)
    if search.status != Search.Status.DONE:
        messages.error(request, "The report is available once the search has finished.")
        return HttpResponseRedirect(reverse("workbench:search", args=[search.pk]))
    pdf = search_report_pdf(search=search, generated_by=request.user)  # type: ignore[arg-type]
    services.search_report_download_record(
        search=search,
        user=request.user,  # type: ignore[arg-type]
        sha256=hashlib.sha256(pdf).hexdigest(),
        request=request,
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="rfr-case-{search.case_id}-search-{search.pk}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- Candidates ------------------------------------------------------------------------------------------


def _gallery_template(candidate: Candidate) -> Any:
    return selectors.candidate_gallery_template(candidate=candidate)


@login_required
@require_GET
def candidate_detail(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = selectors.candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    search = candidate.search
    with transaction.atomic():
        audit_event_record(
            action="candidate.viewed",
            actor=request.user,
            target=candidate,
            case_id=search.case_id,
            request=request,
            detail={"search_id": search.pk, "rank": candidate.rank, "subject_ref": candidate.subject_ref},
        )
    siblings = list(search.candidates.order_by("rank").values_list("pk", flat=True))
    position = siblings.index(candidate.pk)
    decisions = list(candidate.decisions.select_related("reviewer"))
    user_decided = any(d.reviewer_id == request.user.pk for d in decisions)
    shown, withheld = selectors.decisions_visible_to(candidate=candidate, viewer=request.user, decisions=decisions)
    awaiting_second = candidate.outcome == Candidate.Outcome.POSSIBLE_MATCH
    return render(
        request,
        "cases/workbench/candidate_detail.html",
        {
            "case": search.case,
            "search": search,
            "face": search.face,
            "candidate": candidate,
            "label": candidate_label(candidate),
            "decisions": shown,
            "withheld": withheld,
            "withheld_text": selectors.WITHHELD_TEXT,
            "verdicts": Decision.Verdict.choices,
            "can_decide": not user_decided and (not decisions or awaiting_second),
            "needs_second_reviewer": awaiting_second and not services.user_is_second_reviewer(user=request.user),  # type: ignore[arg-type]
            "awaiting_second": awaiting_second,
            "gallery_image_held": _gallery_template(candidate) is not None,
            "previous_id": siblings[position - 1] if position > 0 else None,
            "next_id": siblings[position + 1] if position + 1 < len(siblings) else None,
            "wording": POSSIBLE_MATCH_WORDING,
        },
    )


@login_required
@require_POST
def candidate_decide(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = selectors.candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    try:
        decision = services.candidate_decision_record(
            candidate=candidate,
            reviewer=request.user,  # type: ignore[arg-type]
            decision=request.POST.get("decision", ""),
            rationale=request.POST.get("rationale", ""),
            request=request,
        )
    except WorkbenchError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Decision recorded: {decision.get_decision_display()}. {candidate_label(candidate)}."
        )
    return HttpResponseRedirect(reverse("workbench:candidate", args=[candidate.pk]))


@login_required
@require_GET
def candidate_image(request: HttpRequest, candidate_id: int) -> FileResponse:
    candidate = selectors.candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    template = _gallery_template(candidate)
    if template is None:
        raise Http404("The gallery image is no longer held.")
    return _image_response(template.image.file)


@login_required
@require_GET
def candidate_crop(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = selectors.candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    crop = selectors.candidate_aligned_crop(candidate=candidate)
    if crop is None:
        raise Http404("The gallery image is no longer held.")
    return _png_response(crop)
