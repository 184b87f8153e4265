"""Celery tasks of the gallery side: thin wrappers over search.enrolment and search.galleries, taking primary
keys. Enrolment runs on the inference queue, retention purges on housekeeping, index snapshots on the search
queue, whose workers are the search nodes (rfr.queues, search.index.node). Only transient
database errors are retried; a redelivered batch skips the items already done.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import celeryd_after_setup
from django.db import InterfaceError, OperationalError

from rfr.queues import Queue, TaskName
from search.enrolment import enrolment_items_process, enrolment_runs_mark_interrupted
from search.evaluations import evaluation_run_execute
from search.galleries import gallery_purge_expired
from search.gallery_admin import enrolment_run_process
from search.index.interface import index_backend
from search.index.live import get_index
from search.index.node import search_node_enter
from search.models import Gallery, IndexState
from search.packs import reembed_run_execute

_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": True, "max_retries": 5}


@shared_task(name=TaskName.GALLERY_ENROL_BATCH.value, **_RETRY)
def gallery_enrol_batch(item_ids: list[int], finish: bool = False) -> None:
    """Enrol a batch of enrolment items; items already done (a redelivered message) are skipped. With `finish`
    (a run no process waits on), the batch that leaves nothing pending finishes the run."""
    enrolment_items_process(item_ids=item_ids, finish=finish)


@shared_task(name=TaskName.GALLERY_PURGE_EXPIRED.value, **_RETRY)
def gallery_purge_expired_task(gallery_id: int | None = None) -> dict[str, int]:
    """Retention purge; scheduled daily by Celery beat. Exits cleanly if the gallery is gone."""
    gallery = None
    if gallery_id is not None:
        gallery = Gallery.objects.filter(pk=gallery_id).first()
        if gallery is None:
            return {}
    return gallery_purge_expired(gallery=gallery)


@shared_task(name=TaskName.GALLERY_ENROL_RUN.value, **_RETRY)
def gallery_enrol_run(run_id: int) -> None:
    """Work through a whole enrolment run started from the gallery page; resumes where a dead worker stopped."""
    enrolment_run_process(run_id=run_id)


@shared_task(name=TaskName.MODELPACK_REEMBED.value, **_RETRY)
def modelpack_reembed(run_id: int) -> None:
    """Re-embed every gallery image with a pack; images already done (a redelivered message) are skipped."""
    reembed_run_execute(run_id=run_id)


@shared_task(name=TaskName.ENROLMENT_RUNS_CHECK.value, **_RETRY)
def enrolment_runs_check() -> list[int]:
    """Mark enrolment runs whose command or job died interrupted; scheduled by Celery beat. Safe to run twice."""
    return enrolment_runs_mark_interrupted()


@shared_task(name=TaskName.EVALUATION_RUN.value, **_RETRY)
def evaluation_run(run_id: int) -> None:
    """Measure an accuracy evaluation an admin queued; a run no longer queued (redelivered) is left alone."""
    evaluation_run_execute(run_id=run_id)


@celeryd_after_setup.connect
def search_node_note(sender: Any, instance: Any, **_: Any) -> None:
    """A worker that consumes the search queue is a search node: the only kind of process that loads an index."""
    if Queue.SEARCH.value in set(instance.app.amqp.queues.consume_from):
        search_node_enter()


@shared_task(name=TaskName.INDEX_SNAPSHOT_WRITE.value, **_RETRY)
def index_snapshot_write(gallery_id: int, pack_key: str) -> bool:
    """Store a snapshot of a gallery index from the node's memory (after an enrolment run, a re-embedding or an
    erasure). Exits quietly if the gallery index is gone."""
    if not IndexState.objects.filter(gallery_id=gallery_id, pack_key=pack_key).exists():
        return False
    index_backend().sync(gallery_id, pack_key)
    return get_index().save(gallery_id, pack_key)
