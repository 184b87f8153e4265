"""Server-rendered pages of cases: the case list and case page, members, closing, the timeline, and the
workbench under a case (probes and their faces, searches, candidates and decisions).

Thin: every page fetches its object through cases.access (404 for outsiders), hands writes to the services,
and presents with cases.presenters. A refusal from a service (rfr.errors.ApplicationError) becomes a page
message through rfr.error_handling; `error_return_to` names the page it comes back to.

Long work (processing an image, running a search) shows a progress bar that static/js/progress.js polls from
the small JSON status endpoints here; without JavaScript the page offers a "Check again" link instead.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.selectors import audit_events_for_reader
from cases import candidate_list, enhancement, images, probes, review, searches
from cases.access import (
    candidate_get_for_user,
    case_access_explain,
    case_get_for_user,
    case_user_may,
    cases_visible_to,
    face_get_for_user,
    probe_get_for_user,
    search_get_for_user,
)
from cases.comparison import comparison_view
from cases.duplicates import probe_duplicate_warning, probe_duplicates_view
from cases.features import FACIAL_FEATURES, FEATURE_ORDER, FeatureAssessment
from cases.forms import CaseCreateForm, CaseNoteForm, MemberAddForm
from cases.housekeeping import work_waiting_for_worker
from cases.images import IMAGE_HEADERS
from cases.lifecycle import case_create, case_may_close, case_may_reopen, case_member_add, case_member_remove
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Decision, Probe, Search
from cases.notes import case_notes_current
from cases.permissions import SEARCH_CASE, case_members, team_supervisors
from cases.presenters import (
    MANUAL_LANDMARKS_WARNING,
    candidate_label,
    candidate_score_meaning,
    candidate_score_phrase,
    decision_feature_rows,
    derivation_view,
    face_marking_text,
    face_view,
    faces_in_order,
    overlay_label,
    probe_progress,
    search_evidence_text,
    search_progress,
)
from cases.reports import search_report_download_record, search_report_pdf
from cases.research import searches_with_runs
from cases.research_views import keep_searching_context
from cases.timeline import case_audit_events
from faceengine.enhance import operations_catalogue
from rfr.error_handling import error_return_to
from rfr.errors import ApplicationError, InvalidInput
from search.galleries import galleries_searchable

# --- Cases ------------------------------------------------------------------------------------------------


@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    cases = cases_visible_to(user=request.user).order_by("-created_at")
    page = Paginator(cases, 50).get_page(request.GET.get("page"))
    return render(request, "cases/case_list.html", {"page": page})


@login_required
@require_http_methods(["GET", "POST"])
def case_new(request: HttpRequest) -> HttpResponse:
    form = CaseCreateForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            case = case_create(owner=request.user, request=request, **form.cleaned_data)  # type: ignore[arg-type]
        except ApplicationError as exc:
            for field, texts in exc.fields.items():
                for text in texts:
                    form.add_error(field if field in form.fields else None, text)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Case {case.reference} opened.")
            return redirect("cases:detail", case_id=case.pk)
    return render(request, "cases/case_new.html", {"form": form})


@login_required
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    return render(
        request,
        "cases/case_detail.html",
        {
            "case": case,
            "is_owner": case.owner_id == request.user.pk,
            "members": case_members(case),
            "supervisors": team_supervisors(case),
            "access": case_access_explain(case=case),
            "may_close": case_may_close(case=case, user=request.user),  # type: ignore[arg-type]
            "may_reopen": case_may_reopen(case=case, user=request.user),  # type: ignore[arg-type]
            "notes": case_notes_current(case=case),
            "note_form": CaseNoteForm(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("cases:members", "case_id")
def case_members_page(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    is_owner = case.owner_id == request.user.pk
    form = MemberAddForm()
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only the case owner can manage members.")
        if "remove" in request.POST:
            user = get_user_model().objects.filter(pk=request.POST.get("remove") or 0).first()
            if user is None:
                raise InvalidInput("unknown_user", "No such user.")
            case_member_remove(case=case, user=user, removed_by=request.user, request=request)  # type: ignore[arg-type]
            messages.success(request, f"{user.get_username()} removed from the case.")
            return redirect("cases:members", case_id=case.pk)
        form = MemberAddForm(request.POST)
        if form.is_valid():
            user = form.cleaned_data["username"]
            case_member_add(case=case, user=user, added_by=request.user, request=request)  # type: ignore[arg-type]
            messages.success(request, f"{user.get_username()} added to the case.")
            return redirect("cases:members", case_id=case.pk)
    return render(
        request,
        "cases/case_members.html",
        {"case": case, "is_owner": is_owner, "members": case_members(case), "form": form},
    )


@login_required
def case_timeline(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    page = Paginator(case_audit_events(case=case), 50).get_page(request.GET.get("page"))
    # As everywhere audit events are shown: a first assessment awaiting its second review is not shown to the
    # (possible) second reviewer.
    page.object_list = audit_events_for_reader(events=page.object_list, viewer=request.user)
    return render(request, "cases/case_timeline.html", {"case": case, "page": page})


# --- Case workbench: probe list and upload ----------------------------------------------------------------


@login_required
@require_GET
def case_workbench(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    return render(
        request,
        "cases/workbench/case_workbench.html",
        {
            "case": case,
            "probes": probes.probes_of_case(case=case),
            "searches": searches_with_runs(searches.searches_of_case(case=case))[:50],
            "sources": Probe.Source.choices,
            "can_search": case_user_may(user=request.user, case=case, perm=SEARCH_CASE),
        },
    )


def _parse_capture_time(raw: str) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    value = parse_datetime(raw)
    if value is None:
        raise InvalidInput("invalid_capture_time", "Give the capture time as a date and time, or leave it blank.")
    return make_aware(value) if is_naive(value) else value


@login_required
@require_POST
@error_return_to("cases:workbench", "case_id")
def probe_upload(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id, perm=SEARCH_CASE)
    files = request.FILES.getlist("images")
    if not files:
        raise InvalidInput("image_required", "Choose at least one image to upload.")
    captured_at = _parse_capture_time(request.POST.get("captured_at", ""))
    stored: list[Probe] = []
    # Each file stands alone: one bad file is reported and the good ones are kept.
    for upload in files:
        try:
            stored.append(
                probes.probe_upload(
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
        except ApplicationError as exc:
            messages.error(request, f"{upload.name}: {exc.message}")
    for probe in stored:  # the same image already in the case: say so, with the probe page linking to it
        if warning := probe_duplicate_warning(probe=probe):
            messages.warning(request, warning)
    if len(stored) == 1:
        messages.success(request, f"{stored[0].original_name} uploaded; looking for faces.")
        return _upload_answer(request, reverse("cases:probe", args=[stored[0].pk]))
    if stored:
        messages.success(request, f"{len(stored)} images uploaded; looking for faces.")
    return _upload_answer(request, reverse("cases:workbench", args=[case.pk]))


def _upload_answer(request: HttpRequest, location: str) -> HttpResponse:
    """Where the browser goes next. The page's upload script (static/js/upload.js, which shows the upload's
    progress) asks for JSON: a redirect would be followed inside its request and use up the page's messages."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return JsonResponse({"location": location})
    return HttpResponseRedirect(location)


# --- Probe: faces, drawn boxes ----------------------------------------------------------------------------


@login_required
@require_GET
def probe_detail(request: HttpRequest, probe_id: int) -> HttpResponse:
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    faces = list(probe.faces.select_related("drawn_by"))
    return render(
        request,
        "cases/workbench/probe_detail.html",
        {
            "case": probe.case,
            "probe": probe,
            "faces": [face_view(f) for f in faces_in_order(faces)],
            "uncertain_faces": sum(1 for f in faces if f.uncertain),
            "display_copy": probes.probe_has_display_copy(probe),
            "label": overlay_label(probe),
            "progress": probe_progress(probe),
            "finished": probe.status in {Probe.Status.DONE, Probe.Status.FAILED},
            "waiting_for_worker": work_waiting_for_worker(probe),
            "can_search": case_user_may(user=request.user, case=probe.case, perm=SEARCH_CASE),
            "derivation": derivation_view(probe),
            "derived": list(probe.derived.order_by("pk")),
            "duplicates": probe_duplicates_view(probe=probe),
        },
    )


WAITING_FOR_WORKER_TEXT = "Waiting for a worker…"


def _waiting(work: Probe | Search) -> dict[str, Any]:
    # Polled with the progress: when nothing is moving, say so rather than show a frozen bar. The work is not
    # lost: housekeeping sends it again (cases.housekeeping), so the page only has to keep polling.
    waiting = work_waiting_for_worker(work)
    return {"waiting_for_worker": waiting, **({"status_text": WAITING_FOR_WORKER_TEXT} if waiting else {})}


@login_required
@require_GET
def probe_status(request: HttpRequest, probe_id: int) -> JsonResponse:
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    return JsonResponse({**probe_progress(probe), **_waiting(probe)})


@login_required
@require_GET
def probe_image(request: HttpRequest, probe_id: int) -> FileResponse:
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    return images.probe_original_response(probe=probe, viewer=request.user, request=request)  # type: ignore[arg-type]


@login_required
@require_GET
def probe_display_image(request: HttpRequest, probe_id: int) -> HttpResponse:
    """The reduced copy the probe page shows for a large image (cases.probes.probe_display_copy)."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    return images.probe_display_response(probe=probe, viewer=request.user, request=request)  # type: ignore[arg-type]


@login_required
@require_POST
@error_return_to("cases:probe", "probe_id", fragment="faces")
def probe_face_draw(request: HttpRequest, probe_id: int) -> HttpResponse:
    probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
    box = [request.POST.get(k, "") for k in ("x", "y", "w", "h")]
    try:
        face = probes.probe_face_from_region(probe=probe, box=box, drawn_by=request.user, request=request)  # type: ignore[arg-type]
    except InvalidInput as exc:
        if exc.code != "no_face_in_region":
            raise
        # Nothing found in the box: offer to place the five landmarks by hand, shown enlarged around it.
        messages.error(request, f"{exc.message} You can also place the face's five landmarks by hand.")
        return HttpResponseRedirect(_mark_url(probe, box=",".join(str(v) for v in box)))
    messages.success(request, f"Face {face.index} found inside the box you drew.")
    return HttpResponseRedirect(reverse("cases:probe", args=[probe.pk]) + "#faces")


# --- Probe: landmarks placed by hand -----------------------------------------------------------------------

MARK_POINT_FIELDS = [(f"p{i}x", f"p{i}y") for i in range(1, 6)]


def _mark_url(probe: Probe, **query: str) -> str:
    url = reverse("cases:probe-mark", args=[probe.pk])
    return url + ("?" + urlencode({k: v for k, v in query.items() if v}) if any(query.values()) else "")


def _box_param(value: str) -> list[str] | None:
    return [part.strip() for part in value.split(",")] if value.strip() else None


def _points_from(data: Any) -> list[list[str]]:
    return [[data.get(fx, "").strip(), data.get(fy, "").strip()] for fx, fy in MARK_POINT_FIELDS]


@login_required
@require_http_methods(["GET", "POST"])
def probe_face_mark(request: HttpRequest, probe_id: int) -> HttpResponse:
    """Place the five landmarks by hand (click on the enlarged region, or type them), preview the aligned
    crop they give, and save the face. Works without JavaScript: Preview posts the form with `preview` set,
    which shows the page again with the crop and stores nothing."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
    data = request.POST if request.method == "POST" else request.GET
    box_text = data.get("box", "").strip()
    points = _points_from(data)
    given = any(v for point in points for v in point)
    error: ApplicationError | None = None
    preview_query = ""
    if probe.status != Probe.Status.DONE:
        error = InvalidInput("probe_not_ready", "Wait until the image has been processed before marking a face.")
    try:
        region = probes.landmark_marking_region(probe=probe, box=_box_param(box_text))
    except InvalidInput as exc:
        error, box_text = exc, ""
        region = probes.landmark_marking_region(probe=probe, box=None)
    saving = request.method == "POST" and not data.get("preview")
    if saving and error is None:
        try:
            face = probes.probe_face_mark_landmarks(
                probe=probe,
                user=request.user,  # type: ignore[arg-type]
                points=points,
                drawn_box=_box_param(box_text),
                request=request,
            )
        except ApplicationError as exc:
            error = exc
        else:
            messages.success(request, f"Face {face.index} saved from the landmarks you placed (manually marked).")
            return HttpResponseRedirect(reverse("cases:probe", args=[probe.pk]) + "#faces")
    elif given and error is None:
        try:
            probes.landmark_points_check(probe=probe, points=points)
        except ApplicationError as exc:
            error = exc
        else:
            pairs = zip(MARK_POINT_FIELDS, points, strict=True)
            preview_query = urlencode({f: v for (fx, fy), (x, y) in pairs for f, v in ((fx, x), (fy, y))})
    x0, y0, x1, y1 = region
    return render(
        request,
        "cases/workbench/probe_mark.html",
        {
            "case": probe.case,
            "probe": probe,
            "box": box_text,
            "region": {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0},
            # Marker sizes in image pixels, so they look the same at any enlargement of the region.
            "marker_radius": max(x1 - x0, y1 - y0) / 80,
            "marker_font": max(x1 - x0, y1 - y0) / 22,
            "marker_stroke": max(x1 - x0, y1 - y0) / 250,
            "points": [
                {"n": n, "name": name, "fx": fx, "fy": fy, "x": x, "y": y}
                for n, (name, (fx, fy), (x, y)) in enumerate(
                    zip(probes.LANDMARK_NAMES, MARK_POINT_FIELDS, points, strict=True), start=1
                )
            ],
            "preview_query": preview_query,
            "error": error,
            "manual_warning": MANUAL_LANDMARKS_WARNING,
        },
        status=400 if error is not None and (saving or given) else 200,
    )


@login_required
@require_GET
def probe_region_image(request: HttpRequest, probe_id: int) -> HttpResponse:
    """The part of the probe shown for marking landmarks, at the original's pixels (audited as a view)."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    try:
        png = probes.probe_region_image(
            probe=probe,
            viewer=request.user,  # type: ignore[arg-type]
            box=_box_param(request.GET.get("box", "")),
            request=request,
        )
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(png, content_type="image/png")
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


@login_required
@require_GET
def probe_landmarks_preview(request: HttpRequest, probe_id: int) -> HttpResponse:
    """The aligned crop the given points would give, before saving (audited as a view); a refusal is a
    400 with the reason as plain text, which the page's script shows."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id)
    try:
        png = probes.probe_landmarks_preview(
            probe=probe,
            viewer=request.user,  # type: ignore[arg-type]
            points=_points_from(request.GET),
            request=request,
        )
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(png, content_type="image/png")
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


@login_required
@require_GET
def face_crop(request: HttpRequest, face_id: int) -> FileResponse:
    face = face_get_for_user(user=request.user, face_id=face_id)
    return images.face_crop_response(face=face, viewer=request.user, request=request)  # type: ignore[arg-type]


# --- Enhancement on the record ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def probe_enhance(request: HttpRequest, probe_id: int) -> HttpResponse:
    """The chain builder: add, set, reorder and remove operations, preview, save as a new derived probe.
    Without JavaScript the chain is the JSON text field, "Preview" reloads the page with it."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
    error: ApplicationError | None = None
    if request.method == "POST" and request.POST.get("action") != "preview":
        raw = request.POST.get("operations", "")
        try:
            derived = enhancement.enhancement_save(
                probe=probe,
                operations=raw,
                made_by=request.user,  # type: ignore[arg-type]
                request=request,
            )
        except ApplicationError as exc:
            error = exc
        else:
            messages.success(request, f"Enhanced image saved as probe #{derived.pk}; looking for faces.")
            return HttpResponseRedirect(reverse("cases:probe", args=[derived.pk]))
    else:  # a GET, or "Preview" without JavaScript: show the chain's preview, store nothing
        raw = request.POST.get("operations", "") if request.method == "POST" else request.GET.get("operations", "")
        if raw:
            try:
                enhancement.enhancement_operations_parse(raw)
            except ApplicationError as exc:
                error = exc
    preview_url = ""
    if raw and error is None:
        preview_url = reverse("cases:probe-enhance-preview", args=[probe.pk]) + "?" + urlencode({"operations": raw})
    return render(
        request,
        "cases/workbench/probe_enhance.html",
        {
            "case": probe.case,
            "probe": probe,
            "catalogue": operations_catalogue(),
            "operations": raw or "[]",
            "preview_url": preview_url,
            "error": error,
            "derivation": derivation_view(probe),
        },
        status=error.status if error else 200,
    )


@login_required
@require_GET
def probe_enhance_preview(request: HttpRequest, probe_id: int) -> HttpResponse:
    """The chain in `?operations=` applied to the probe, as PNG (audited; nothing stored). A refused chain is
    answered with the JSON error shape, so the builder can show the message."""
    probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
    try:
        png = enhancement.enhancement_preview(
            probe=probe,
            operations=request.GET.get("operations", ""),
            viewer=request.user,  # type: ignore[arg-type]
            request=request,
        )
    except ApplicationError as exc:
        return JsonResponse({"error": exc.code, "message": exc.message}, status=exc.status)
    response = HttpResponse(png, content_type="image/png")
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


# --- Search ----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def face_search(request: HttpRequest, face_id: int) -> HttpResponse:
    face = face_get_for_user(user=request.user, face_id=face_id, perm=SEARCH_CASE)
    galleries = list(galleries_searchable())
    form: dict[str, Any] = {
        "galleries": [str(g.pk) for g in galleries] if len(galleries) == 1 else [],
        "top_k": settings.RFR_DEFAULT_TOP_K,
        "threshold": "",
        "justification": "",
        "small_face_reason": "",
    }
    error: ApplicationError | None = None
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
                raise InvalidInput(
                    "invalid_number", "The number of candidates and the threshold must be numbers."
                ) from None
            search = searches.search_request(
                face=face,
                requested_by=request.user,  # type: ignore[arg-type]
                gallery_ids=form["galleries"],
                top_k=top_k,
                threshold=threshold,
                justification=form["justification"],
                small_face_reason=form["small_face_reason"],
                request=request,
            )
        except ApplicationError as exc:
            error = exc
        else:
            return HttpResponseRedirect(reverse("cases:search", args=[search.pk]))
    return render(
        request,
        "cases/workbench/face_search.html",
        {
            "case": face.probe.case,
            "probe": face.probe,
            **face_view(face),
            "galleries": galleries,
            "form": form,
            "error": error,
            "default_threshold": searches.search_default_threshold(pack_key=face.pack_key),
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def search_detail(request: HttpRequest, search_id: int) -> HttpResponse:
    search = search_get_for_user(user=request.user, search_id=search_id)
    candidates: list[Candidate] = []
    filters: list[candidate_list.FilterChoice] = []
    state = "all"
    if search.status == Search.Status.DONE:
        candidates, filters, state = candidate_list.candidates_filter_by_state(
            candidates=searches.candidates_of_search(search=search), state=request.GET.get("state")
        )
        thumbnails = candidate_list.thumbnail_candidate_ids(candidates)
        searches.search_candidates_view_record(
            search=search,
            viewer=request.user,  # type: ignore[arg-type]
            request=request,
            thumbnails=thumbnails,
        )
        # The thumbnails the page is about to fetch are covered by the event just written (cases.candidate_list).
        candidate_list.thumbnails_grant(session=request.session, search_id=search.pk)
    return render(
        request,
        "cases/workbench/search_detail.html",
        {
            "case": search.case,
            "search": search,
            "face": search.face,
            "face_marking": face_marking_text(search.face),
            "candidates": [
                (c, candidate_label(c), candidate_score_meaning(c), candidate_score_phrase(c)) for c in candidates
            ],
            "filters": filters,
            "state": state,
            "evidence": search_evidence_text(search),
            "finished": search.status in {Search.Status.DONE, Search.Status.FAILED},
            "waiting_for_worker": work_waiting_for_worker(search),
            "wording": POSSIBLE_MATCH_WORDING,
            "derivation": derivation_view(search.face.probe),
            **keep_searching_context(search=search, user=request.user),  # its runs, and keep searching
        },
    )


@login_required
@require_GET
def search_status(request: HttpRequest, search_id: int) -> JsonResponse:
    search = search_get_for_user(user=request.user, search_id=search_id)
    return JsonResponse({**search_progress(search), **_waiting(search)})


@login_required
@require_GET
def search_report(request: HttpRequest, search_id: int) -> HttpResponse:
    search = search_get_for_user(user=request.user, search_id=search_id)
    if search.status != Search.Status.DONE:
        messages.error(request, "The report is available once the search has finished.")
        return HttpResponseRedirect(reverse("cases:search", args=[search.pk]))
    pdf = search_report_pdf(search=search, generated_by=request.user)  # type: ignore[arg-type]
    search_report_download_record(
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


@login_required
@require_GET
def candidate_detail(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    search = candidate.search
    review.candidate_view_record(candidate=candidate, viewer=request.user, request=request)  # type: ignore[arg-type]
    siblings = list(search.candidates.order_by("rank").values_list("pk", flat=True))
    position = siblings.index(candidate.pk)
    decisions = list(candidate.decisions.select_related("reviewer"))
    template = review.candidate_gallery_template(candidate=candidate)
    user_decided = any(d.reviewer_id == request.user.pk for d in decisions)
    shown, withheld = review.decisions_visible_to(candidate=candidate, viewer=request.user, decisions=decisions)
    awaiting_second = review.candidate_awaits_second_review(candidate=candidate)
    needs_reviewer = review.candidate_second_review_needs_reviewer(candidate=candidate)
    return render(
        request,
        "cases/workbench/candidate_detail.html",
        {
            "case": search.case,
            "search": search,
            "face": search.face,
            "face_marking": face_marking_text(search.face),
            "candidate": candidate,
            "label": candidate_label(candidate),
            "meaning": candidate_score_meaning(candidate),
            "decisions": shown,
            "withheld": withheld,
            "withheld_text": review.WITHHELD_TEXT,
            "verdicts": Decision.Verdict.choices,
            "can_decide": not user_decided and (not decisions or awaiting_second),
            "needs_second_reviewer": needs_reviewer and not review.user_is_second_reviewer(user=request.user),  # type: ignore[arg-type]
            "awaiting_second": awaiting_second,
            "gallery_image_held": template is not None,
            "comparison": comparison_view(face=search.face, template=template),
            "decision_features": {d.pk: decision_feature_rows(d) for d in shown},
            "features": FACIAL_FEATURES,
            "assessments": FeatureAssessment.choices,
            "previous_id": siblings[position - 1] if position > 0 else None,
            "next_id": siblings[position + 1] if position + 1 < len(siblings) else None,
            "wording": POSSIBLE_MATCH_WORDING,
            "derivation": derivation_view(search.face.probe),
        },
    )


@login_required
@require_POST
@error_return_to("cases:candidate", "candidate_id")
def candidate_decide(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    decision = review.candidate_decision_record(
        candidate=candidate,
        reviewer=request.user,  # type: ignore[arg-type]
        decision=request.POST.get("decision", ""),
        rationale=request.POST.get("rationale", ""),
        features={key: request.POST.get(f"feature_{key}", "") for key in FEATURE_ORDER},
        request=request,
    )
    messages.success(request, f"Decision recorded: {decision.get_decision_display()}. {candidate_label(candidate)}.")
    return HttpResponseRedirect(reverse("cases:candidate", args=[candidate.pk]))


@login_required
@require_GET
def candidate_image(request: HttpRequest, candidate_id: int) -> FileResponse:
    candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    return images.candidate_image_response(candidate=candidate, viewer=request.user, request=request)  # type: ignore[arg-type]


@login_required
@require_GET
def candidate_thumbnail(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """A candidate's aligned face for the candidate list: covered by the list's audit event while this session
    holds the list's grant, else recorded on its own (cases.candidate_list)."""
    candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    crop = review.candidate_aligned_crop(candidate=candidate)
    if crop is None:
        raise Http404("The gallery image is no longer held.")
    response = images.png_response(crop)
    if candidate_list.thumbnails_granted(session=request.session, search_id=candidate.search_id):
        return response
    return images.response_recorded(
        response,
        lambda: review.candidate_image_view_record(
            candidate=candidate,
            viewer=request.user,  # type: ignore[arg-type]
            shown="thumbnail",
            request=request,
        ),
    )


@login_required
@require_GET
def candidate_crop(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
    return images.candidate_crop_response(candidate=candidate, viewer=request.user, request=request)  # type: ignore[arg-type]
