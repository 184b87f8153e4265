from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from accounts.roles import user_is_admin
from audit.selectors import audit_view_allowed
from cases.access import cases_visible_to
from cases.models import Case
from cases.queue import reviews_waiting_for

HOME_OPEN_CASES = 10
HOME_WAITING_REVIEWS = 5


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: the user's open cases (need-to-know applies), where to start, and the reminder."""
    open_cases = cases_visible_to(user=request.user).filter(status=Case.Status.OPEN).order_by("-updated_at")
    return render(
        request,
        "home.html",
        {
            "open_cases": open_cases[:HOME_OPEN_CASES],
            "open_case_count": open_cases.count(),
            "may_view_audit": audit_view_allowed(user=request.user),
            "is_admin": user_is_admin(request.user),
            # Each waiting review links straight to its candidate: one click from home (cases.queue).
            "waiting_reviews": reviews_waiting_for(user=request.user)[:HOME_WAITING_REVIEWS],
        },
    )


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
