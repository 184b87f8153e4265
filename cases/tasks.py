"""Celery tasks of the case workbench. Thin: they take primary keys and hand over to the services.

acks_late is on globally, so a worker that dies mid-task leaves the message for another; the services are
written so that a second run of finished work changes nothing. Only database connection errors are retried.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from cases import workbench_services

_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": True, "max_retries": 3}


@shared_task(name="cases.probe_process", **_RETRY)
def probe_process_task(probe_id: int) -> None:
    workbench_services.probe_process(probe_id=probe_id)


@shared_task(name="cases.search_run", **_RETRY)
def search_run_task(search_id: int) -> None:
    workbench_services.search_execute(search_id=search_id)
