"""Celery tasks of the case workbench. Thin: they take primary keys and hand over to the services.

acks_late is on globally, so a worker that dies mid-task leaves the message for another; the services are
written so that a second run of finished work changes nothing. Only database connection errors are retried.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init
from django.db import InterfaceError, OperationalError

from cases import workbench_services

logger = logging.getLogger(__name__)

_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": True, "max_retries": 3}


def _engine_load() -> None:
    from rfr.engine import active_engine

    try:
        active_engine()
    except Exception:  # the first task loads it again and reports the fault where a person sees it
        logger.exception("could not load the face engine at worker start")


@worker_process_init.connect
def engine_warm_up(**_: Any) -> None:
    """Load the face engine as each worker process starts, not in the first probe it is given: otherwise the
    first image uploaded after a (re)start waits about two seconds longer (bench.workbench, "cold").

    In a thread, because Celery gives worker_process_init only a few seconds before it counts the process as
    failed; a task arriving meanwhile waits on get_engine's lock for this load instead of starting another.
    """
    threading.Thread(target=_engine_load, name="rfr-engine-warm-up", daemon=True).start()


@shared_task(name="cases.probe_process", **_RETRY)
def probe_process_task(probe_id: int) -> None:
    workbench_services.probe_process(probe_id=probe_id)


@shared_task(name="cases.search_run", **_RETRY)
def search_run_task(search_id: int) -> None:
    workbench_services.search_execute(search_id=search_id)


@shared_task(name="cases.purge_expired", **_RETRY)
def cases_purge_expired_task() -> dict[str, int]:
    """Retention purge of closed cases; schedule with Celery beat (e.g. daily). Safe to run twice."""
    purged = workbench_services.cases_purge_expired()
    return {str(case_id): sum(detail["deleted"].values()) for case_id, detail in purged.items()}
