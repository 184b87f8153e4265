"""The review queue page and the notifications pages (selectors in cases.queue, cases.notifications)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from cases.notifications import (
    NOTIFICATIONS_SHOWN,
    notification_get_for_user,
    notifications_for,
    notifications_mark_read,
    notifications_view_record,
)
from cases.presenters import candidate_label
from cases.queue import (
    QUEUE_SHOWN,
    RECENT_SEARCHES_SHOWN,
    disputed_for,
    outcomes_on_my_cases,
    queue_view_record,
    reviews_waiting_for,
    team_recent_searches,
)
from cases.review import user_is_second_reviewer


@login_required
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    """What is waiting for the signed-in person: second reviews, disputes, their team's searches, outcomes."""
    user = request.user
    waiting = list(reviews_waiting_for(user=user)[:QUEUE_SHOWN])
    disputed = list(disputed_for(user=user)[:QUEUE_SHOWN])
    outcomes = list(outcomes_on_my_cases(user=user)[:QUEUE_SHOWN])
    recent = list(team_recent_searches(user=user)[:RECENT_SEARCHES_SHOWN])
    queue_view_record(
        user=user,  # type: ignore[arg-type]
        waiting=len(waiting),
        disputed=len(disputed),
        outcomes=len(outcomes),
        searches=len(recent),
        request=request,
    )
    return render(
        request,
        "cases/queue.html",
        {
            "waiting": waiting,
            "disputed": [(c, candidate_label(c)) for c in disputed],
            "outcomes": [(c, candidate_label(c)) for c in outcomes],
            "recent": recent,
            "is_reviewer": user_is_second_reviewer(user=user),  # type: ignore[arg-type]
        },
    )


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    shown = list(notifications_for(user=request.user)[:NOTIFICATIONS_SHOWN])
    notifications_view_record(user=request.user, shown=shown, request=request)  # type: ignore[arg-type]
    return render(request, "cases/notifications.html", {"notifications": shown})


@login_required
@require_POST
def notification_open(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one notification read and go to what it is about (one click from the list)."""
    notification = notification_get_for_user(user=request.user, notification_id=notification_id)
    notifications_mark_read(user=request.user, notification_ids=[notification.pk], request=request)  # type: ignore[arg-type]
    target = notification.url
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect("cases:notifications")
    return HttpResponseRedirect(target)


@login_required
@require_POST
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    count = notifications_mark_read(user=request.user, request=request)  # type: ignore[arg-type]
    messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect("cases:notifications")
