"""/audit/: the audit trail for supervisors (their teams) and admins (everything), filterable by username, case
reference, action and date; CSV export.

Both show each event as its reader may read it (`audit.selectors.audit_events_for_reader`): the case content
in `detail` only to people on the case, and a first assessment awaiting its second review only to its author.
The page words each event's detail as labelled fields (audit.presenters) and names a case by its reference
where its reader may read that case, by its number otherwise (audit.selectors.audit_case_reference_names).
"""

from __future__ import annotations

import csv
import json
import re
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
    audit_case_ids_for_reference,
    audit_case_ids_readable_by,
    audit_case_reference_names,
    audit_events_filter,
    audit_events_for_reader,
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


CASE_NUMBER = re.compile(r"^#(\d{1,18})$")


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, Any, dict[str, Any]]:
    """The form, the events it selects for this reader, and the filters as applied (a case reference resolved
    to the ids of the cases it names for the reader)."""
    if not audit_view_allowed(user=request.user):
        raise PermissionDenied("The audit trail is open to supervisors and admins.")
    form = AuditFilterForm(request.GET or None)
    filters = form.filters() if request.GET else {}
    reference = filters.pop("case_reference", "")
    number = CASE_NUMBER.match(reference)
    if number:
        # A case by its number: events already visible to the reader, whose detail stays redacted if they are
        # not on the case, so the number tells them nothing the unfiltered list does not.
        filters["case_id"] = int(number.group(1))
    elif reference:
        # A reference names only a case the reader may read (a reference is case content).
        filters["case_ids"] = audit_case_ids_for_reference(user=request.user, reference=reference)
    events = audit_events_filter(audit_events_visible_to(user=request.user), **filters)
    return form, events, filters


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    form, events, _filters = _filtered(request)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    page.object_list = audit_events_for_reader(events=page.object_list, viewer=request.user)
    case_ids = {event.case_id for event in page.object_list if event.case_id is not None}
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/audit_list.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "case_references": audit_case_reference_names(user=request.user, case_ids=case_ids),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_CHUNK = 2000


def _chunks(events: Any) -> Iterator[list[AuditEvent]]:
    chunk: list[AuditEvent] = []
    for event in events.iterator(chunk_size=CSV_CHUNK):
        chunk.append(event)
        if len(chunk) == CSV_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _csv_rows(events: Any, viewer: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    readable = audit_case_ids_readable_by(user=viewer)  # once per export, not per chunk
    for chunk in _chunks(events):
        for event in audit_events_for_reader(events=chunk, viewer=viewer, readable_case_ids=readable):
            yield _csv_row(writer, event)


def _csv_row(writer: Any, event: AuditEvent) -> str:
    return str(
        writer.writerow(
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
    )


@login_required
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    _form, events, applied = _filtered(request)
    # Recorded as applied: a reference as the case ids it named for this reader, since the export event carries
    # no case and so is not redacted for its readers, and a reference is case content.
    filters = {
        k: (sorted(v) if k == "case_ids" else str(v) if v is not None else None)
        for k, v in applied.items()
        if v not in ("", None)
    }
    last_seq = audit_export_record(user=request.user, events=events, filters=filters, request=request)
    response = StreamingHttpResponse(_csv_rows(events.filter(seq__lte=last_seq), request.user), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="rfr-audit-{stamp}.csv"'
    return response
