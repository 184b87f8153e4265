"""The case page's housekeeping: notes (append-only, with history), closing with a confirmation step and a
reason, and reopening by a supervisor with a reason. The services are cases.notes and cases.lifecycle."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from cases.access import case_get_for_user
from cases.forms import CaseCloseConfirmForm, CaseNoteForm, CaseReopenForm
from cases.lifecycle import case_close, case_may_close, case_may_reopen, case_reopen
from cases.notes import case_note_add, case_note_edit, case_note_get, case_note_history
from rfr.error_handling import error_return_to


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("cases:close", "case_id")
def case_close_page(request: HttpRequest, case_id: int) -> HttpResponse:
    """Confirm closing the case, with the reason; only its owner or a supervisor of its team."""
    case = case_get_for_user(user=request.user, case_id=case_id)
    if not case_may_close(case=case, user=request.user):  # type: ignore[arg-type]
        if not case.is_open:
            messages.info(request, "The case is already closed.")
            return redirect("cases:detail", case_id=case.pk)
        raise PermissionDenied("Only the case owner or a supervisor of its team can close the case.")
    form = CaseCloseConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case_close(case=case, closed_by=request.user, reason=form.cleaned_data["reason"], request=request)  # type: ignore[arg-type]
        messages.success(request, f"Case {case.reference} closed.")
        return redirect("cases:detail", case_id=case.pk)
    return render(request, "cases/case_close.html", {"case": case, "form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("cases:reopen", "case_id")
def case_reopen_page(request: HttpRequest, case_id: int) -> HttpResponse:
    """Reopen a closed case, with the reason; only a supervisor of its team."""
    case = case_get_for_user(user=request.user, case_id=case_id)
    if not case_may_reopen(case=case, user=request.user):  # type: ignore[arg-type]
        if case.is_open:
            messages.info(request, "The case is open.")
            return redirect("cases:detail", case_id=case.pk)
        raise PermissionDenied("Only a supervisor of the case's team can reopen it.")
    form = CaseReopenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        case_reopen(case=case, reopened_by=request.user, reason=form.cleaned_data["reason"], request=request)  # type: ignore[arg-type]
        messages.success(request, f"Case {case.reference} reopened.")
        return redirect("cases:detail", case_id=case.pk)
    return render(request, "cases/case_reopen.html", {"case": case, "form": form}, status=400 if form.errors else 200)


@login_required
@require_POST
@error_return_to("cases:detail", "case_id", fragment="notes")
def case_note_new(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    case_note_add(case=case, author=request.user, text=request.POST.get("text", ""), request=request)  # type: ignore[arg-type]
    messages.success(request, "Note added.")
    return _to_notes(case.pk)


def _to_notes(case_id: int) -> HttpResponse:
    response = redirect("cases:detail", case_id=case_id)
    response["Location"] += "#notes"
    return response


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("cases:note", "case_id", "note_id")
def case_note_page(request: HttpRequest, case_id: int, note_id: int) -> HttpResponse:
    """A note's versions, oldest first, and (for its author, on its latest version) the form to edit it."""
    case = case_get_for_user(user=request.user, case_id=case_id)
    note = case_note_get(case=case, note_id=note_id)
    versions = case_note_history(note=note)
    latest = versions[-1]
    may_edit = case.is_open and latest.author_id == request.user.pk
    if request.method == "POST":
        if not may_edit:
            raise PermissionDenied("Only the note's author can edit it, while the case is open.")
        # The version the person edited (the form names it): if someone edited it meanwhile, that is refused.
        edited = next((v for v in versions if str(v.pk) == request.POST.get("replaces", str(latest.pk))), latest)
        case_note_edit(note=edited, editor=request.user, text=request.POST.get("text", ""), request=request)  # type: ignore[arg-type]
        messages.success(request, "Note edited; the earlier version is kept.")
        return _to_notes(case.pk)
    form = CaseNoteForm(initial={"text": latest.text}) if may_edit else None
    return render(
        request,
        "cases/case_note.html",
        {"case": case, "versions": versions, "latest": latest, "form": form},
    )
