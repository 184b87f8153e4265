"""Task names and the queues they run on, and the one way services queue work.

Three queues, so that a flood of one kind of work never starves another and each can get the workers it
needs (see the README's production section and docker-compose.yml):

- inference: probe processing and gallery enrolment, the face engine's heavy lifting;
- search: running searches against the gallery indexes, short and latency-sensitive;
- housekeeping: retention purges and other periodic maintenance (Celery beat).

Services queue tasks by name (`task_enqueue_on_commit`), so a service never imports the tasks module that
imports it: tasks depend on services, never the reverse. Without a broker (the embedded default) Celery runs
the task in-process, through the same call.

Broker outages. A service that is about to store work checks first that the broker answers
(`queue_require_available`), and refuses with a 503 `queue_unavailable` while nothing is stored. If the
broker fails after that check, at the moment of queueing (which happens only once the row has committed),
the failure is logged and reported to `on_failure`, never raised: the row is committed and stays pending, and
the housekeeping re-queue task (`TaskName.WORK_REQUEUE`) sends it again once the broker is back. So no
committed row is left that nothing will process, and a person never sees a server error for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from celery import current_app
from django.db import transaction

from rfr.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

QUEUE_UNAVAILABLE_MESSAGE = (
    "The task queue that processes images and searches cannot be reached just now, so nothing was stored."
    " Try again in a minute; if this keeps happening, tell your system administrator."
)
# How long the check before storing waits for the broker: a dead broker must not hold a request for long.
BROKER_CHECK_TIMEOUT_SECONDS = 2.0


class Queue(StrEnum):
    INFERENCE = "inference"
    SEARCH = "search"
    HOUSEKEEPING = "housekeeping"


# For a worker that serves every queue (`celery -A rfr worker -Q <ALL_QUEUES>`): `make worker`, the tests.
ALL_QUEUES = ",".join(queue.value for queue in Queue)


class TaskName(StrEnum):
    PROBE_PROCESS = "cases.probe_process"
    SEARCH_RUN = "cases.search_run"
    CASES_PURGE_EXPIRED = "cases.purge_expired"
    # The names gallery tasks were first released under, kept so messages queued before an upgrade still run.
    GALLERY_ENROL_BATCH = "search.tasks.gallery_enrol_batch"
    GALLERY_PURGE_EXPIRED = "search.tasks.gallery_purge_expired_task"
    AUDIT_ANCHOR = "audit.anchor_head"
    GALLERY_ENROL_RUN = "search.gallery_enrol_run"
    MODELPACK_REEMBED = "search.modelpack_reembed"
    WORK_REQUEUE = "cases.work_requeue"
    STORAGE_SWEEP = "cases.storage_sweep"
    ENROLMENT_RUNS_CHECK = "search.enrolment_runs_check"
    EVALUATION_RUN = "search.evaluation_run"
    RESEARCH_DUE = "cases.research_due"
    VIDEO_PROCESS = "cases.video_process"
    INDEX_SNAPSHOT_WRITE = "search.index_snapshot_write"


TASK_QUEUES: dict[TaskName, Queue] = {
    TaskName.PROBE_PROCESS: Queue.INFERENCE,
    TaskName.GALLERY_ENROL_BATCH: Queue.INFERENCE,
    TaskName.SEARCH_RUN: Queue.SEARCH,
    TaskName.CASES_PURGE_EXPIRED: Queue.HOUSEKEEPING,
    TaskName.GALLERY_PURGE_EXPIRED: Queue.HOUSEKEEPING,
    TaskName.AUDIT_ANCHOR: Queue.HOUSEKEEPING,
    TaskName.GALLERY_ENROL_RUN: Queue.INFERENCE,
    TaskName.MODELPACK_REEMBED: Queue.INFERENCE,
    TaskName.WORK_REQUEUE: Queue.HOUSEKEEPING,
    TaskName.STORAGE_SWEEP: Queue.HOUSEKEEPING,
    TaskName.ENROLMENT_RUNS_CHECK: Queue.HOUSEKEEPING,
    TaskName.EVALUATION_RUN: Queue.INFERENCE,
    TaskName.RESEARCH_DUE: Queue.HOUSEKEEPING,
    TaskName.VIDEO_PROCESS: Queue.INFERENCE,
    TaskName.INDEX_SNAPSHOT_WRITE: Queue.SEARCH,
}


def task_enqueue(name: TaskName, *args: Any) -> None:
    """Queue the task registered under `name` now (routed to its queue by CELERY_TASK_ROUTES)."""
    current_app.signature(name.value, args=args).delay()


def queue_available() -> bool:
    """Whether the broker answers now (always true in the embedded default, where tasks run in-process).

    A fresh connection, not a pooled one: a pooled connection to a broker that has since died still looks open.
    """
    if current_app.conf.task_always_eager:
        return True
    connection = current_app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=0, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("the task broker cannot be reached", exc_info=True)
        return False
    finally:
        connection.release()
    return True


def queue_require_available() -> None:
    """Refuse (503 queue_unavailable) before anything is stored if the broker cannot be reached."""
    if not queue_available():
        raise ServiceUnavailable("queue_unavailable", QUEUE_UNAVAILABLE_MESSAGE)


def task_enqueue_on_commit(name: TaskName, *args: Any, on_failure: Callable[[], None] | None = None) -> None:
    """Queue the task once the current transaction commits, so a worker never looks for a row not yet there.

    The row has committed by then, so a broker failure is not raised (it would turn stored work into a server
    error): it is logged and `on_failure` is called, to mark the row for the re-queue task.
    """

    def send() -> None:
        try:
            task_enqueue(name, *args)
        except Exception:
            if current_app.conf.task_always_eager:
                raise  # in-process, this is the task's own fault, not the broker's
            logger.exception("could not queue %s%r; the re-queue task will send it again", name.value, args)
            if on_failure is not None:
                on_failure()

    transaction.on_commit(send)
