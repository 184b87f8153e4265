"""Filters of the accuracy and thresholds pages: a rate and a ratio in the words the PDF annex uses."""

from __future__ import annotations

from typing import Any

from django import template

from search.accuracy_report import curves_have_fnmr, percent, ratio_text
from search.models import EvaluationRun

register = template.Library()


@register.filter
def rate(value: float | None) -> str:
    """0.003 -> "0.3%"; None -> "not measured"."""
    return percent(value)


@register.filter
def ratio(value: float | None) -> str:
    return ratio_text(value)


@register.filter
def index(sequence: Any, position: int) -> Any:
    try:
        return sequence[position]
    except (IndexError, TypeError, KeyError):
        return None


@register.filter
def has_det(run: EvaluationRun, attribute: str) -> bool:
    return curves_have_fnmr(run, attribute)
