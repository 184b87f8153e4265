"""Celery tasks of the gallery side: thin wrappers over search.enrolment and search.galleries, taking primary
keys. Enrolment runs on the inference queue, retention purges on housekeeping (rfr.queues). Only transient
database errors are retried; a redelivered batch skips the items already done.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from rfr.queues import TaskName
from search.enrolment import enrolment_items_process, enrolment_runs_mark_interrupted
from search.evaluations import evaluation_run_execute
from search.galleries import gallery_purge_expired
from search.gallery_admin import enrolment_run_process
from search.models import Gallery
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
