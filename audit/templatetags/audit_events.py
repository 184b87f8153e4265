"""Template filters for showing audit events: the detail as labelled fields, the action in words, the case
by its reference where the reader may read it (audit.presenters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from audit.presenters import audit_action_description, audit_detail_fields

register = template.Library()


@register.filter
def detail_fields(detail: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return audit_detail_fields(detail)


@register.filter
def action_description(action: str) -> str:
    return audit_action_description(action)


@register.filter
def case_label(case_id: int | None, references: Mapping[int, str] | None) -> str:
    """The case's reference where the page was given it (cases the reader may read), otherwise its number."""
    if case_id is None:
        return ""
    if isinstance(references, Mapping) and case_id in references:
        return references[case_id]
    return f"#{case_id}"
