"""Celery tasks of the audit trail: the hourly checkpoint of the chain's head (housekeeping queue, Celery beat)."""

from __future__ import annotations

from celery import shared_task

from audit.anchor import audit_anchor_head
from rfr.queues import TaskName


@shared_task(name=TaskName.AUDIT_ANCHOR.value)
def audit_anchor_task() -> int:
    """Append the head to the anchor file; returns its seq (0 for an empty trail)."""
    head = audit_anchor_head()
    return head[0] if head else 0
