"""Task names and the queues they run on, and the one way services queue work.

Three queues, so that a flood of one kind of work never starves another and each can get the workers it
needs (see the README's production section and docker-compose.yml):

- inference: probe processing and gallery enrolment, the face engine's heavy lifting;
- search: running searches against the gallery indexes, short and latency-sensitive;
- housekeeping: retention purges and other periodic maintenance (Celery beat).

Services queue tasks by name (`task_enqueue_on_commit`), so a service never imports the tasks module that
imports it: tasks depend on services, never the reverse. Without a broker (the embedded default) Celery runs
the task in-process, through the same call.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from celery import current_app
from django.db import transaction


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


TASK_QUEUES: dict[TaskName, Queue] = {
    TaskName.PROBE_PROCESS: Queue.INFERENCE,
    TaskName.GALLERY_ENROL_BATCH: Queue.INFERENCE,
    TaskName.SEARCH_RUN: Queue.SEARCH,
    TaskName.CASES_PURGE_EXPIRED: Queue.HOUSEKEEPING,
    TaskName.GALLERY_PURGE_EXPIRED: Queue.HOUSEKEEPING,
    TaskName.AUDIT_ANCHOR: Queue.HOUSEKEEPING,
    TaskName.GALLERY_ENROL_RUN: Queue.INFERENCE,
    TaskName.MODELPACK_REEMBED: Queue.INFERENCE,
}


def task_enqueue(name: TaskName, *args: Any) -> None:
    """Queue the task registered under `name` now (routed to its queue by CELERY_TASK_ROUTES)."""
    current_app.signature(name.value, args=args).delay()


def task_enqueue_on_commit(name: TaskName, *args: Any) -> None:
    """Queue the task once the current transaction commits, so a worker never looks for a row not yet there."""
    transaction.on_commit(lambda: task_enqueue(name, *args))
