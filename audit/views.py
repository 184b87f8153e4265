"""/audit/: the audit trail for supervisors (their teams) and admins (everything), filterable; CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from audit.selectors import (
    audit_action_choices,
    audit_events_filter,
    audit_events_visible_to,
    audit_view_allowed,
)
from audit.services import audit_export_record

CSV_COLUMNS = [
    "id",
    "seq",
    "created_at",
    "actor_username",
    "action",
    "target_type",
    "target_id",
    "case_id",
    "ip_address",
    "user_agent",
    "detail",
    "row_hash",
]


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, Any]:
    if not audit_view_allowed(user=request.user):
        raise PermissionDenied("The audit trail is open to supervisors and admins.")
    form = AuditFilterForm(request.GET or None)
    events = audit_events_filter(audit_events_visible_to(user=request.user), **form.filters() if request.GET else {})
    return form, events


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    form, events = _filtered(request)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/audit_list.html",
        {"form": form, "page": page, "query": query.urlencode(), "actions": audit_action_choices()},
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(events: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    event: AuditEvent
    for event in events.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                event.pk,
                event.seq,
                event.created_at.isoformat(),
                event.actor_username,
                event.action,
                event.target_type,
                event.target_id,
                "" if event.case_id is None else event.case_id,
                event.ip_address or "",
                event.user_agent,
                json.dumps(event.detail, sort_keys=True),
                event.row_hash,
            ]
        )


@login_required
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    form, events = _filtered(request)
    filters = {k: (str(v) if v is not None else None) for k, v in form.filters().items()} if request.GET else {}
    last_seq = audit_export_record(user=request.user, events=events, filters=filters, request=request)
    response = StreamingHttpResponse(_csv_rows(events.filter(seq__lte=last_seq)), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="rfr-audit-{stamp}.csv"'
    return response
