"""The navigation's counts of what waits for the signed-in person (cases.queue.queue_counts): reviews they may
give now and unread notifications. Computed once per page, only when a template uses them."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from cases.queue import QueueCounts, queue_counts


def review_queue(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    counts: QueueCounts = SimpleLazyObject(lambda: queue_counts(user=user))  # type: ignore[assignment]
    return {"rfr_queue": counts}
