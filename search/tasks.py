"""Celery tasks: thin wrappers over search.services, taking primary keys."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from search import services
from search.models import Gallery


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def gallery_enrol_batch(item_ids: list[int]) -> None:
    """Enrol a batch of enrolment items; items already done (a redelivered message) are skipped."""
    services.enrolment_items_process(item_ids=item_ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def gallery_purge_expired_task(gallery_id: int | None = None) -> dict[str, int]:
    """Retention purge; schedule with Celery beat (e.g. daily). Exits cleanly if the gallery is gone."""
    gallery = None
    if gallery_id is not None:
        gallery = Gallery.objects.filter(pk=gallery_id).first()
        if gallery is None:
            return {}
    return services.gallery_purge_expired(gallery=gallery)
