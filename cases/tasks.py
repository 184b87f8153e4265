"""Celery tasks of cases. Thin: they take primary keys and hand over to the services, which re-fetch the row,
exit quietly if it is gone, and skip work already finished (a redelivered message changes nothing).

Probe processing runs on the inference queue, searches on the search queue, retention on housekeeping
(rfr.queues). acks_late is on globally, so a worker that dies mid-task leaves the message for another. Only
transient database errors are retried.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import celeryd_after_setup, worker_process_init
from django.db import InterfaceError, OperationalError

from cases.housekeeping import storage_orphans_sweep, work_requeue
from cases.probes import probe_process
from cases.research import research_due
from cases.retention import cases_purge_expired
from cases.searches import search_run
from cases.video import video_process
from rfr.engine import active_engine
from rfr.queues import Queue, TaskName

logger = logging.getLogger(__name__)

_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": True, "max_retries": 5}


@shared_task(name=TaskName.PROBE_PROCESS.value, **_RETRY)
def probe_process_task(probe_id: int) -> None:
    probe_process(probe_id=probe_id)


@shared_task(name=TaskName.SEARCH_RUN.value, **_RETRY)
def search_run_task(search_id: int) -> None:
    search_run(search_id=search_id)


@shared_task(name=TaskName.CASES_PURGE_EXPIRED.value, **_RETRY)
def cases_purge_expired_task() -> dict[str, int]:
    """Retention purge of closed cases; scheduled daily by Celery beat. Safe to run twice."""
    purged = cases_purge_expired()
    return {str(case_id): sum(detail["deleted"].values()) for case_id, detail in purged.items()}


@shared_task(name=TaskName.WORK_REQUEUE.value, **_RETRY)
def work_requeue_task() -> dict[str, int]:
    """Send again probes and searches that show no sign of a worker; scheduled every minute by Celery beat."""
    return work_requeue()


@shared_task(name=TaskName.STORAGE_SWEEP.value, **_RETRY)
def storage_sweep_task() -> dict[str, int]:
    """Remove (and audit) image files that no row names; scheduled by Celery beat. Safe to run twice."""
    report = storage_orphans_sweep()
    return {"files": len(report.files), "bytes": report.bytes}


@shared_task(name=TaskName.RESEARCH_DUE.value, **_RETRY)
def research_due_task() -> dict[str, int]:
    """Re-run kept searches on their galleries' new enrolments; scheduled by Celery beat. Safe to run twice."""
    return research_due()


# The queues this worker consumes (its -Q), noted before the pool's processes are forked so they inherit it.
_worker_queues: set[str] = set()


@celeryd_after_setup.connect
def worker_queues_note(sender: Any, instance: Any, **_: Any) -> None:
    _worker_queues.update(instance.app.amqp.queues.consume_from)


def _engine_load() -> None:
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
    Only on workers that serve the inference queue: a search or housekeeping worker never runs the engine.
    """
    if _worker_queues and Queue.INFERENCE.value not in _worker_queues:
        return
    threading.Thread(target=_engine_load, name="rfr-engine-warm-up", daemon=True).start()


@shared_task(name=TaskName.VIDEO_PROCESS.value, **_RETRY)
def video_process_task(video_id: int) -> None:
    """Analyse a video's frames and build its tracks, resuming after the last stored frame (cases.video)."""
    video_process(video_id=video_id)
