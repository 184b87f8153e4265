"""rfr's own admin pages for galleries (/manage/galleries/), model packs (/manage/modelpacks/), default
thresholds (/manage/thresholds/) and the accuracy and fairness evidence (/manage/accuracy/). Admins only
(accounts.roles.user_is_admin), except the accuracy page and its annex, which supervisors may read too; anyone
else signed in gets 403, as on /audit/. Every change goes through an audited service
(search.gallery_admin, search.galleries, search.packs); a refusal comes back as a message on the page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.roles import SUPERVISOR, user_has_role, user_is_admin
from rfr.engine import active_pack_name
from rfr.error_handling import error_return_to
from rfr.errors import InvalidInput
from search.accuracy import active_pack_key, evaluation_packs, threshold_evidence
from search.accuracy_report import (
    NOTES,
    accuracy_annex_download_record,
    accuracy_annex_pdf,
    accuracy_overview,
    accuracy_view_record,
    curve_alt_text,
    run_attributes,
    run_curve_png,
)
from search.cohorts import (
    score_cohort_activate,
    score_cohort_active,
    score_cohort_deactivate,
    score_cohorts_compared,
    score_cohorts_list,
)
from search.evaluations import evaluation_run_progress, evaluation_run_queue, evaluation_spec_resolve
from search.forms import (
    EvaluationQueueForm,
    FolderEnrolForm,
    GalleryCreateForm,
    ReasonForm,
    RetentionForm,
    ThresholdProposalForm,
    ThresholdSetForm,
    ZipEnrolForm,
)
from search.galleries import gallery_create, gallery_image_delete, subject_delete
from search.gallery_admin import (
    enrolment_item_display_path,
    enrolment_run_progress,
    enrolment_run_resume,
    enrolment_run_start_from_folder,
    enrolment_run_start_from_zip,
    galleries_overview,
    gallery_purge_now,
    gallery_retention_set,
)
from search.models import EnrolmentItem, EnrolmentRun, EvaluationRun, Gallery, GalleryImage, ReembedRun, Subject
from search.packs import (
    gallery_images_total,
    modelpack_activate,
    modelpack_verify,
    modelpacks_list,
    reembed_run_create,
    reembed_run_progress,
)
from search.thresholds import (
    SOURCE_GALLERY,
    gallery_threshold,
    gallery_threshold_set,
    system_threshold,
    threshold_system_set,
)

View = Callable[..., HttpResponse]


def admin_only(view: View) -> View:
    """Signed in (else the sign-in page) and an admin (else 403, as the audit pages refuse)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_admin(request.user):
            raise PermissionDenied("Gallery and model-pack administration is open to administrators only.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def admin_or_supervisor(view: View) -> View:
    """Signed in and an admin or a supervisor (the accuracy evidence); else 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (user_is_admin(request.user) or user_has_role(request.user, SUPERVISOR)):
            raise PermissionDenied("The accuracy and fairness evidence is open to administrators and supervisors.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _form_errors(form: Any) -> InvalidInput:
    fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    text = " ".join(
        f"{form.fields[n].label or n}: {' '.join(e)}" if n in form.fields else " ".join(e) for n, e in fields.items()
    )
    return InvalidInput("invalid_form", text or "The form is not valid.", fields=fields)


# -- galleries ----------------------------------------------------------------------------------------------
@admin_only
def gallery_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "search/manage/gallery_list.html", {"rows": galleries_overview(), "active_pack": active_pack_name()}
    )


@admin_only
def gallery_new(request: HttpRequest) -> HttpResponse:
    form = GalleryCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        gallery = gallery_create(
            name=data["name"],
            kind=data["kind"],
            description=data["description"],
            provenance=data["provenance"],
            retention_days=data["retention_days"],
            index_mode=data["index_mode"],
            actor=request.user,
            request=request,
        )
        messages.success(request, f"Gallery {gallery.name} created.")
        return redirect("search:manage-gallery", gallery_id=gallery.pk)
    return render(request, "search/manage/gallery_new.html", {"form": form}, status=400 if form.errors else 200)


@admin_only
def gallery_detail(request: HttpRequest, gallery_id: int) -> HttpResponse:
    gallery = get_object_or_404(Gallery, pk=gallery_id)
    (overview,) = galleries_overview(Gallery.objects.filter(pk=gallery.pk))
    query = request.GET.get("q", "").strip()
    subjects = gallery.subjects.annotate(image_count=Count("images")).order_by("external_ref")
    if query:
        subjects = subjects.filter(external_ref__icontains=query)
    page = Paginator(subjects, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "search/manage/gallery_detail.html",
        {
            "gallery": gallery,
            "overview": overview,
            "page": page,
            "q": query,
            "query": urlencode({"q": query}) if query else "",
            "runs": gallery.enrolment_runs.all()[:10],
            "retention_form": RetentionForm(initial={"retention_days": gallery.retention_days}),
            "zip_form": ZipEnrolForm(),
            "folder_form": FolderEnrolForm(),
            "enrolment_roots": settings.RFR_ENROLMENT_ROOTS,
            "zip_max_mb": settings.RFR_ENROLMENT_ZIP_MAX_BYTES // (1024 * 1024),
        },
    )


@admin_only
@require_POST
@error_return_to("search:manage-gallery", "gallery_id", fragment="retention")
def gallery_retention(request: HttpRequest, gallery_id: int) -> HttpResponse:
    gallery = get_object_or_404(Gallery, pk=gallery_id)
    form = RetentionForm(request.POST)
    if not form.is_valid():
        raise _form_errors(form)
    gallery = gallery_retention_set(
        gallery=gallery, retention_days=form.cleaned_data["retention_days"], actor=request.user, request=request
    )
    kept = f"{gallery.retention_days} days" if gallery.retention_days else "until removed on request"
    messages.success(request, f"Retention of {gallery.name} set: images are kept {kept}.")
    return redirect("search:manage-gallery", gallery_id=gallery.pk)


@admin_only
@require_POST
@error_return_to("search:manage-gallery", "gallery_id", fragment="retention")
def gallery_purge(request: HttpRequest, gallery_id: int) -> HttpResponse:
    gallery = get_object_or_404(Gallery, pk=gallery_id)
    purged = gallery_purge_now(gallery=gallery, actor=request.user, request=request)
    messages.success(request, f"Purge of {gallery.name} done: {purged} expired images deleted.")
    return redirect("search:manage-gallery", gallery_id=gallery.pk)


@admin_only
@require_POST
@error_return_to("search:manage-gallery", "gallery_id", fragment="enrol")
def gallery_enrol_zip(request: HttpRequest, gallery_id: int) -> HttpResponse:
    gallery = get_object_or_404(Gallery, pk=gallery_id)
    form = ZipEnrolForm(request.POST, request.FILES)
    if not form.is_valid():
        raise _form_errors(form)
    upload = form.cleaned_data["archive"]
    run = enrolment_run_start_from_zip(
        gallery=gallery,
        upload=upload,
        filename=upload.name or "",
        size=upload.size or 0,
        actor=request.user,
        request=request,
    )
    messages.success(request, f"Enrolment run {run.pk} started: {run.items.count()} files listed.")
    return redirect("search:manage-enrolment-run", run_id=run.pk)


@admin_only
@require_POST
@error_return_to("search:manage-gallery", "gallery_id", fragment="enrol")
def gallery_enrol_folder(request: HttpRequest, gallery_id: int) -> HttpResponse:
    gallery = get_object_or_404(Gallery, pk=gallery_id)
    form = FolderEnrolForm(request.POST)
    if not form.is_valid():
        raise _form_errors(form)
    run = enrolment_run_start_from_folder(
        gallery=gallery, folder=form.cleaned_data["folder"], actor=request.user, request=request
    )
    messages.success(request, f"Enrolment run {run.pk} started: {run.items.count()} files listed.")
    return redirect("search:manage-enrolment-run", run_id=run.pk)


@admin_only
def enrolment_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EnrolmentRun.objects.select_related("gallery"), pk=run_id)
    failed = [
        {"file": enrolment_item_display_path(item=item), "subject_ref": item.subject_ref, "message": item.message}
        for item in run.items.filter(status=EnrolmentItem.Status.FAILED).order_by("pk")[:1000]
    ]
    return render(
        request,
        "search/manage/enrolment_run.html",
        {"run": run, "progress": enrolment_run_progress(run=run), "failed": failed},
    )


@admin_only
@require_POST
@error_return_to("search:manage-enrolment-run", "run_id")
def enrolment_run_resume_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EnrolmentRun, pk=run_id)
    pending = enrolment_run_resume(run=run, actor=request.user, request=request)
    messages.success(request, f"Enrolment run {run.pk} queued again: {pending} files left.")
    return redirect("search:manage-enrolment-run", run_id=run.pk)


@admin_only
def enrolment_run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(EnrolmentRun, pk=run_id)
    return JsonResponse(enrolment_run_progress(run=run))


@admin_only
def subject_detail(request: HttpRequest, subject_id: int) -> HttpResponse:
    subject = get_object_or_404(Subject.objects.select_related("gallery"), pk=subject_id)
    images = subject.images.annotate(template_count=Count("templates")).order_by("pk")
    return render(
        request,
        "search/manage/subject_detail.html",
        {"subject": subject, "images": images, "reason_form": ReasonForm()},
    )


@admin_only
@require_POST
@error_return_to("search:manage-subject", "subject_id", fragment="remove")
def subject_remove(request: HttpRequest, subject_id: int) -> HttpResponse:
    subject = get_object_or_404(Subject, pk=subject_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        raise _form_errors(form)
    detail = subject_delete(subject=subject, reason=form.cleaned_data["reason"], actor=request.user, request=request)
    messages.success(
        request,
        f"Subject {detail['external_ref']} removed: {detail['images_deleted']} images and "
        f"{detail['templates_deleted']} templates deleted.",
    )
    return redirect("search:manage-gallery", gallery_id=detail["gallery_id"])


@admin_only
@require_POST
def image_remove(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(GalleryImage, pk=image_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form).message)
        return redirect("search:manage-subject", subject_id=image.subject_id)
    detail = gallery_image_delete(image=image, reason=form.cleaned_data["reason"], actor=request.user, request=request)
    messages.success(request, f"Image {detail['gallery_image_id']} removed ({detail['templates_deleted']} templates).")
    return redirect("search:manage-subject", subject_id=detail["subject_id"])


# -- model packs --------------------------------------------------------------------------------------------
@admin_only
def modelpack_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "search/manage/modelpack_list.html",
        {
            "packs": modelpacks_list(),
            "active_pack": active_pack_name(),
            "setting_pack": settings.RFR_MODEL_PACK,
            "images_total": gallery_images_total(),
            "runs": ReembedRun.objects.all()[:10],
        },
    )


@admin_only
@require_POST
@error_return_to("search:manage-modelpacks")
def modelpack_verify_view(request: HttpRequest, name: str) -> HttpResponse:
    ok, message = modelpack_verify(name=name, actor=request.user, request=request)
    (messages.success if ok else messages.error)(request, f"Verify {name}: {'OK' if ok else 'FAILED'}. {message}")
    return redirect("search:manage-modelpacks")


@admin_only
@require_POST
@error_return_to("search:manage-modelpacks")
def modelpack_activate_view(request: HttpRequest, name: str) -> HttpResponse:
    pack = modelpack_activate(name=name, actor=request.user, request=request)
    messages.success(
        request,
        f"{pack.key} is now the active pack. Gallery images need templates of this pack (re-embed) before"
        " searches find them.",
    )
    return redirect("search:manage-modelpacks")


@admin_only
@require_POST
@error_return_to("search:manage-modelpacks")
def modelpack_reembed_view(request: HttpRequest, name: str) -> HttpResponse:
    run = reembed_run_create(name=name, actor=request.user, request=request)
    messages.success(request, f"Re-embedding run {run.pk} with {run.pack_key} started.")
    return redirect("search:manage-reembed-run", run_id=run.pk)


@admin_only
def reembed_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ReembedRun, pk=run_id)
    return render(request, "search/manage/reembed_run.html", {"run": run, "progress": reembed_run_progress(run=run)})


@admin_only
def reembed_run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(ReembedRun, pk=run_id)
    return JsonResponse(reembed_run_progress(run=run))


# -- accuracy and fairness ------------------------------------------------------------------------------------
THRESHOLD_SOURCE_WORDS = {
    "system": "the pack's system default, set on the thresholds page",
    "setting": "the setting RFR_DEFAULT_THRESHOLD (no default stored for this pack)",
}


def _chosen_pack(request: HttpRequest) -> tuple[str, list[str]]:
    active = active_pack_key()
    packs = sorted({active, *evaluation_packs()})
    chosen = request.GET.get("pack") or active
    return (chosen if chosen in packs else active), packs


@admin_or_supervisor
def accuracy(request: HttpRequest) -> HttpResponse:
    pack_key, packs = _chosen_pack(request)
    threshold, source = system_threshold(pack_key=pack_key)
    overview = accuracy_overview(pack_key=pack_key, threshold=threshold)
    accuracy_view_record(
        actor=request.user, pack_key=pack_key, runs=[o["run"] for o in overview], threshold=threshold, request=request
    )
    for item in overview:
        item["curves"] = [(a, curve_alt_text(item["run"], a)) for a in item["attributes"]]
    return render(
        request,
        "search/manage/accuracy.html",
        {
            "pack_key": pack_key,
            "packs": packs,
            "active_pack_key": active_pack_key(),
            "threshold": threshold,
            "threshold_source": THRESHOLD_SOURCE_WORDS[source],
            "overview": overview,
            "notes": NOTES,
            "is_admin": user_is_admin(request.user),
            "queue_form": EvaluationQueueForm(),
            "evaluation_roots": settings.RFR_EVALUATION_ROOTS,
            "recent_runs": EvaluationRun.objects.filter(pack_key=pack_key).exclude(status=EvaluationRun.Status.DONE)[
                :10
            ],
        },
    )


@admin_only
@require_POST
@error_return_to("search:manage-accuracy", fragment="measure")
def accuracy_run_new(request: HttpRequest) -> HttpResponse:
    """Queue a measurement of the active pack on a server folder; its page shows the progress."""
    form = EvaluationQueueForm(request.POST)
    if not form.is_valid():
        raise _form_errors(form)
    data = form.cleaned_data
    spec = evaluation_spec_resolve(kind=data["kind"], folder=data["folder"], labels=data["labels"] or "")
    run = evaluation_run_queue(
        spec=spec,
        dataset_name=data["dataset_name"],
        dataset_is_research=data["research"],
        actor=request.user,
        request=request,
    )
    messages.success(request, f"Evaluation run {run.pk} queued on {data['dataset_name']}.")
    return redirect("search:manage-accuracy-run", run_id=run.pk)


@admin_or_supervisor
def accuracy_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(EvaluationRun, pk=run_id)
    return render(
        request,
        "search/manage/evaluation_run.html",
        {"run": run, "progress": evaluation_run_progress(run=run), "is_admin": user_is_admin(request.user)},
    )


@admin_or_supervisor
def accuracy_run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(EvaluationRun, pk=run_id)
    return JsonResponse(evaluation_run_progress(run=run))


@admin_or_supervisor
def accuracy_curve(request: HttpRequest, run_id: int, attribute: str) -> HttpResponse:
    """A run's curves for one attribute, as a PNG (part of the accuracy page, whose view is audited)."""
    run = get_object_or_404(EvaluationRun, pk=run_id, status=EvaluationRun.Status.DONE)
    if attribute not in run_attributes(run):
        raise Http404("No curves for that attribute.")
    threshold, _ = system_threshold(pack_key=run.pack_key)
    response = HttpResponse(run_curve_png(run=run, attribute=attribute, threshold=threshold), content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


@admin_or_supervisor
def accuracy_annex(request: HttpRequest) -> HttpResponse:
    pack_key, _ = _chosen_pack(request)
    threshold, source = system_threshold(pack_key=pack_key)
    pdf = accuracy_annex_pdf(
        pack_key=pack_key,
        threshold=threshold,
        threshold_source=THRESHOLD_SOURCE_WORDS[source],
        generated_by=request.user,
    )
    runs = [o["run"] for o in accuracy_overview(pack_key=pack_key, threshold=threshold)]
    accuracy_annex_download_record(
        actor=request.user,
        pack_key=pack_key,
        runs=runs,
        threshold=threshold,
        sha256=hashlib.sha256(pdf).hexdigest(),
        request=request,
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pack_key)
    response["Content-Disposition"] = f'attachment; filename="rfr-accuracy-annex-{safe}.pdf"'
    return response


# -- thresholds ---------------------------------------------------------------------------------------------
def _threshold_rows(pack_key: str) -> list[dict[str, Any]]:
    system, _ = system_threshold(pack_key=pack_key)
    rows = []
    for gallery in Gallery.objects.order_by("name"):
        own = gallery_threshold(gallery, pack_key=pack_key)
        rows.append(
            {
                "gallery": gallery,
                "own": own,
                "other_pack": gallery.default_threshold is not None and own is None,
                "in_force": own if own is not None else system,
            }
        )
    return rows


@admin_only
def thresholds(request: HttpRequest) -> HttpResponse:
    """The defaults in force, and a proposal's expected error rates on the stored evaluations, shown before the
    change can be saved (the save form appears only with the preview)."""
    pack_key, packs = _chosen_pack(request)
    galleries = list(Gallery.objects.order_by("name"))
    system, source = system_threshold(pack_key=pack_key)
    proposal = ThresholdProposalForm(request.GET if "target" in request.GET else None, galleries=galleries)
    preview: dict[str, Any] | None = None
    if proposal.is_bound and proposal.is_valid():
        target, value = proposal.cleaned_data["target"], proposal.cleaned_data["value"]
        gallery = next((g for g in galleries if str(g.pk) == target), None)
        current = system if gallery is None else (gallery_threshold(gallery, pack_key=pack_key) or system)
        proposed = threshold_evidence(pack_key=pack_key, threshold=value) if value is not None else []
        now = threshold_evidence(pack_key=pack_key, threshold=current)
        accuracy_view_record(
            actor=request.user,
            pack_key=pack_key,
            runs=[e["run"] for e in proposed or now],
            threshold=value if value is not None else current,
            page="thresholds",
            request=request,
        )
        preview = {
            "target": target,
            "gallery": gallery,
            "value": value,
            "current": current,
            "rows": [
                {"summary": p["summary"], "proposed": p["at"], "current": c["at"]}
                for p, c in zip(proposed, now, strict=True)
            ]
            if proposed
            else [],
            "form": ThresholdSetForm(initial={"target": target, "value": value}, galleries=galleries),
        }
    return render(
        request,
        "search/manage/thresholds.html",
        {
            "pack_key": pack_key,
            "packs": packs,
            "active_pack_key": active_pack_key(),
            "system": system,
            "system_source": THRESHOLD_SOURCE_WORDS[source],
            "setting": settings.RFR_DEFAULT_THRESHOLD,
            "rows": _threshold_rows(pack_key),
            "proposal": proposal,
            "preview": preview,
            "source_gallery": SOURCE_GALLERY,
        },
        status=400 if proposal.is_bound and proposal.errors else 200,
    )


@admin_only
@require_POST
@error_return_to("search:manage-thresholds")
def threshold_set(request: HttpRequest) -> HttpResponse:
    pack_key, _ = _chosen_pack(request)
    galleries = list(Gallery.objects.order_by("name"))
    form = ThresholdSetForm(request.POST, galleries=galleries)
    if not form.is_valid():
        raise _form_errors(form)
    data = form.cleaned_data
    if data["target"] == "system":
        threshold_system_set(
            pack_key=pack_key, threshold=data["value"], reason=data["reason"], actor=request.user, request=request
        )
        messages.success(request, f"System default threshold of {pack_key} set to {data['value']:.3f}.")
    else:
        gallery = get_object_or_404(Gallery, pk=int(data["target"]))
        gallery_threshold_set(
            gallery=gallery,
            pack_key=pack_key,
            threshold=data["value"],
            reason=data["reason"],
            actor=request.user,
            request=request,
        )
        done = f"set to {data['value']:.3f}" if data["value"] is not None else "cleared"
        messages.success(request, f"Default threshold of gallery {gallery.name} {done}.")
    query = f"?{urlencode({'pack': pack_key})}"
    return redirect(reverse("search:manage-thresholds") + query)


# -- score normalisation cohorts (/manage/cohorts/) ---------------------------------------------------------
@admin_only
def cohort_list(request: HttpRequest) -> HttpResponse:
    pack_key = active_pack_key()
    return render(
        request,
        "search/manage/cohort_list.html",
        {
            "pack_key": pack_key,
            "active": score_cohort_active(pack_key=pack_key) if pack_key else None,
            "cohorts": list(score_cohorts_list()),
            "comparison": score_cohorts_compared(pack_key=pack_key) if pack_key else [],
        },
    )


@admin_only
@require_POST
@error_return_to("search:manage-cohorts")
def cohort_activate_view(request: HttpRequest, cohort_id: int) -> HttpResponse:
    cohort = score_cohort_activate(cohort_id=cohort_id, actor=request.user, request=request)
    messages.success(
        request,
        f"Searches of {cohort.pack_key} are now normalised against cohort {cohort.name} (v{cohort.version});"
        f" their default threshold is {cohort.threshold:.3f} on the normalised scale.",
    )
    return redirect("search:manage-cohorts")


@admin_only
@require_POST
@error_return_to("search:manage-cohorts")
def cohort_deactivate_view(request: HttpRequest) -> HttpResponse:
    pack_key = request.POST.get("pack_key", "")
    score_cohort_deactivate(pack_key=pack_key, actor=request.user, request=request)
    messages.success(request, f"Searches of {pack_key} use raw cosine scores again.")
    return redirect("search:manage-cohorts")
