"""Case pages: list, create, detail, members, close, timeline. Every case page fetches its case through
cases.selectors.case_get_for_user, so outsiders get 404."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from cases.forms import CaseCloseForm, CaseCreateForm, MemberAddForm
from cases.permissions import case_members, team_supervisors
from cases.selectors import case_audit_events, case_get_for_user, cases_visible_to
from cases.services import case_close, case_create, case_member_add, case_member_remove
from cases.workbench_selectors import audit_events_withhold_pending_reviews


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


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
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Case {case.reference} opened.")
            return redirect("case-detail", case_id=case.pk)
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
            "close_form": CaseCloseForm(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def case_members_page(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    is_owner = case.owner_id == request.user.pk
    form = MemberAddForm()
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only the case owner can manage members.")
        try:
            if "remove" in request.POST:
                user = get_user_model().objects.filter(pk=request.POST.get("remove") or 0).first()
                if user is None:
                    raise ValidationError("No such user.")
                case_member_remove(case=case, user=user, removed_by=request.user, request=request)  # type: ignore[arg-type]
                messages.success(request, f"{user.get_username()} removed from the case.")
                return redirect("case-members", case_id=case.pk)
            form = MemberAddForm(request.POST)
            if form.is_valid():
                user = form.cleaned_data["username"]
                case_member_add(case=case, user=user, added_by=request.user, request=request)  # type: ignore[arg-type]
                messages.success(request, f"{user.get_username()} added to the case.")
                return redirect("case-members", case_id=case.pk)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
    return render(
        request,
        "cases/case_members.html",
        {"case": case, "is_owner": is_owner, "members": case_members(case), "form": form},
    )


@login_required
@require_POST
def case_close_page(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    form = CaseCloseForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        case_close(case=case, closed_by=request.user, reason=reason, request=request)  # type: ignore[arg-type]
        messages.success(request, "Case closed.")
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("case-detail", case_id=case.pk)


@login_required
def case_timeline(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    page = Paginator(case_audit_events(case=case), 50).get_page(request.GET.get("page"))
    # A first assessment awaiting its second review is not shown to the (possible) second reviewer.
    page.object_list = audit_events_withhold_pending_reviews(events=page.object_list, viewer=request.user)
    return render(request, "cases/case_timeline.html", {"case": case, "page": page})
