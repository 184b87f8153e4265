"""Galleries of lawfully held images: creating them, and deleting from them (on request, with a reason, or
under their retention rule). A deletion takes effect for searches the moment it commits, because every hit is
re-checked against the database (search.execution); every process's index catches up through the change log.

A deletion erases: in its transaction the rows go (templates with their embeddings, images, the subject),
the enrolment work items lose the subject reference and source path, and the candidates that point at them
are marked removed (gallery_entries_removed, received by cases); once it commits the image files are deleted
and the gallery's index snapshot files are rewritten without the removed vectors (search.index.erasure).
Only these services may delete gallery rows (search.models.gallery_removal_permitted).
Enrolment into a gallery is search.enrolment.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import InvalidInput
from rfr.limits import text_limit_check
from search.enrolment_storage import enrolment_item_copies_delete
from search.index.changes import index_changes_record
from search.index.erasure import index_snapshots_erase, index_snapshots_sweep
from search.models import (
    EnrolmentItem,
    Gallery,
    GalleryImage,
    IndexChange,
    Subject,
    Template,
    gallery_removal_permitted,
)

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None


def galleries_searchable() -> QuerySet[Gallery]:
    """The galleries an investigator may choose to search, by name."""
    return Gallery.objects.order_by("name")


def gallery_template_get(*, template_id: int) -> Template | None:
    """A gallery template with its image, or None once it has been deleted."""
    return Template.objects.select_related("image").filter(pk=template_id).first()


# -- galleries ----------------------------------------------------------------------------------------------
def gallery_create(
    *,
    name: str,
    kind: str,
    description: str = "",
    provenance: str = "",
    retention_days: int | None = None,
    index_mode: str = Gallery.IndexMode.EXACT,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> Gallery:
    text_limit_check("gallery_description", description, label="description")
    text_limit_check("gallery_provenance", provenance, label="provenance")
    if kind not in Gallery.Kind.values:
        raise InvalidInput("invalid_kind", f"The kind must be one of {', '.join(Gallery.Kind.values)}.")
    if index_mode not in Gallery.IndexMode.values:
        raise InvalidInput(
            "invalid_index_mode", f"The index mode must be one of {', '.join(Gallery.IndexMode.values)}."
        )
    with transaction.atomic():
        gallery = Gallery.objects.create(
            name=name,
            kind=kind,
            description=description,
            provenance=provenance,
            retention_days=retention_days,
            index_mode=index_mode,
        )
        audit_event_record(
            action=AuditAction.GALLERY_CREATE,
            actor=actor,
            target=gallery,
            request=request,
            detail={"name": name, "kind": kind, "retention_days": retention_days, "index_mode": index_mode},
        )
    return gallery


# -- removal ----------------------------------------------------------------------------------------------
class RemovalCause(StrEnum):
    """Why gallery entries went: a deletion request (with its reason), or the gallery's retention rule."""

    REQUEST = "request"
    RETENTION = "retention"


gallery_entries_removed = Signal()
"""Sent inside a removal's transaction with `template_ids`, `image_ids`, `cause` (a RemovalCause) and
`removed_at`. The case side (cases.signals) marks the candidates that point at them removed, in the same
transaction; each receiver returns how many rows it changed, which the removal's audit event records."""

REMOVED_ITEM_MESSAGE = "removed from the gallery ({cause}); reference and path erased"


def _enrolment_items_scrub(*, gallery_id: int, image_ids: list[int], subject_refs: list[str], cause: str) -> int:
    """Enrolment bookkeeping keeps no reference or path of what was removed: the work items of the removed
    images, and of the removed subjects, keep their status (so a run's counts stand) but lose the subject
    reference, source path and CSV attributes. A pending item is failed, so a running run cannot enrol the
    removed subject again."""
    item_ids = list(
        EnrolmentItem.objects.filter(
            Q(image_id__in=image_ids) | Q(run__gallery_id=gallery_id, subject_ref__in=subject_refs)
        ).values_list("pk", flat=True)
    )
    items = EnrolmentItem.objects.filter(pk__in=item_ids)
    # The items' copies in the enrolment storage (a run not yet finished keeps them) are the removed subject's
    # images: they go once this commits.
    copies = [(item.run, item.path) for item in items.exclude(path="").select_related("run")]
    if copies:
        transaction.on_commit(lambda: enrolment_item_copies_delete(items=copies))
    items.filter(status=EnrolmentItem.Status.PENDING).update(status=EnrolmentItem.Status.FAILED)
    return items.update(path="", subject_ref="", attributes={}, message=REMOVED_ITEM_MESSAGE.format(cause=cause))


def _snapshots_erase_on_commit(gallery_ids: set[int]) -> None:
    """Once the removal commits, rewrite the galleries' index files without the removed vectors (at once for
    every removal; the daily retention run sweeps again, for a process that died in between)."""

    def erase() -> None:
        try:
            index_snapshots_erase(gallery_ids=sorted(gallery_ids))
        except Exception:  # the daily sweep retries; the removal itself has committed
            logger.exception("could not erase index snapshots of galleries %s", sorted(gallery_ids))

    transaction.on_commit(erase)


def _delete_images(
    *, images: list[GalleryImage], cause: RemovalCause, subject_refs: list[str] | None = None
) -> dict[str, int]:
    """Delete images with their templates and index entries, scrub their enrolment items, mark the candidates
    that point at them; files go, and index snapshots are rewritten, once the transaction commits."""
    templates = list(Template.objects.filter(image__in=images).values_list("pk", "gallery_id", "pack_key"))
    by_index: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for pk, gallery_id, pack_key in templates:
        by_index.setdefault((gallery_id, pack_key), []).append((pk, IndexChange.Op.REMOVE))
    for (gallery_id, pack_key), changes in sorted(by_index.items()):
        index_changes_record(gallery_id=gallery_id, pack_key=pack_key, changes=changes)
    files = [(image.file.storage, image.file.name) for image in images if image.file.name]
    image_ids = [image.pk for image in images]
    template_ids = [pk for pk, _, _ in templates]
    gallery_ids = {image.gallery_id for image in images}
    items = sum(
        _enrolment_items_scrub(gallery_id=gallery_id, image_ids=image_ids, subject_refs=subject_refs or [], cause=cause)
        for gallery_id in gallery_ids
    )
    with gallery_removal_permitted():
        Template.objects.filter(pk__in=template_ids).delete()
        GalleryImage.objects.filter(pk__in=image_ids).delete()
    # After the deletes: a search storing candidates holds its hits' template rows (cases.searches.search_run),
    # so the deletes wait for it to commit, and the candidates it stored are then marked here.
    responses = gallery_entries_removed.send(
        sender=GalleryImage, template_ids=template_ids, image_ids=image_ids, cause=cause, removed_at=timezone.now()
    )

    def remove_files() -> None:
        for storage, name in files:
            try:
                storage.delete(str(name))
            except OSError:
                logger.exception("could not delete gallery file %s", name)

    transaction.on_commit(remove_files)
    _snapshots_erase_on_commit(gallery_ids)
    return {
        "images": len(images),
        "templates": len(templates),
        "enrolment_items_scrubbed": items,
        "candidates_marked_removed": sum(int(count or 0) for _, count in responses),
    }


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason_required", "A reason is required to delete gallery data.")
    text_limit_check("removal_reason", reason, label="reason")
    return reason


def subject_delete(*, subject: Subject, reason: str, actor: Actor = None, request: HttpRequest | None = None) -> dict:
    """Delete a subject, its images, files and templates; effective for searches as soon as it commits, and
    erased from the index files once it has."""
    reason = _require_reason(reason)
    with transaction.atomic():
        subject = Subject.objects.select_for_update().select_related("gallery").get(pk=subject.pk)
        removed = _delete_images(
            images=list(subject.images.all()), cause=RemovalCause.REQUEST, subject_refs=[subject.external_ref]
        )
        detail = {
            "gallery": subject.gallery.name,
            "gallery_id": subject.gallery_id,
            "subject_id": subject.pk,
            "external_ref": subject.external_ref,
            "images_deleted": removed["images"],
            "templates_deleted": removed["templates"],
            "enrolment_items_scrubbed": removed["enrolment_items_scrubbed"],
            "candidates_marked_removed": removed["candidates_marked_removed"],
            "reason": reason,
        }
        audit_event_record(
            action=AuditAction.GALLERY_SUBJECT_DELETE, actor=actor, target=subject, request=request, detail=detail
        )
        with gallery_removal_permitted():
            subject.delete()
    return detail


def gallery_image_delete(
    *, image: GalleryImage, reason: str, actor: Actor = None, request: HttpRequest | None = None
) -> dict:
    reason = _require_reason(reason)
    with transaction.atomic():
        image = GalleryImage.objects.select_for_update().select_related("gallery", "subject").get(pk=image.pk)
        removed = _delete_images(images=[image], cause=RemovalCause.REQUEST)
        detail = {
            "gallery": image.gallery.name,
            "gallery_id": image.gallery_id,
            "subject_id": image.subject_id,
            "external_ref": image.subject.external_ref,
            "gallery_image_id": image.pk,
            "templates_deleted": removed["templates"],
            "enrolment_items_scrubbed": removed["enrolment_items_scrubbed"],
            "candidates_marked_removed": removed["candidates_marked_removed"],
            "reason": reason,
        }
        audit_event_record(
            action=AuditAction.GALLERY_IMAGE_DELETE, actor=actor, target=image, request=request, detail=detail
        )
    return detail


def gallery_purge_expired(*, gallery: Gallery | None = None, actor: Actor = None, now: Any = None) -> dict[str, int]:
    """Apply retention rules: delete images older than their gallery's retention_days (by capture date,
    or enrolment date where none was given), and subjects left with no images. Returns counts per gallery.

    Each purge erases its vectors from the index files once it commits; the run then sweeps the snapshots of
    every gallery (or of the one given), so a vector whose erasure was cut short (a process that died between
    commit and rewrite) is gone by the next daily run at the latest."""
    now = now or timezone.now()
    galleries = Gallery.objects.filter(retention_days__isnull=False)
    if gallery is not None:
        galleries = galleries.filter(pk=gallery.pk)
    purged: dict[str, int] = {}
    for each in galleries:
        assert each.retention_days is not None
        cutoff = now - timedelta(days=each.retention_days)
        expired = Q(captured_at__lt=cutoff.date()) | Q(captured_at__isnull=True, enrolled_at__lt=cutoff)
        reason = f"retention rule: older than {each.retention_days} days (before {cutoff.date().isoformat()})"
        with transaction.atomic():
            images = list(GalleryImage.objects.select_for_update().filter(expired, gallery=each))
            if not images:
                continue
            subject_ids = {image.subject_id for image in images}
            # The subjects this purge empties (every image of theirs expired), known before their images go.
            remaining = set(
                GalleryImage.objects.filter(subject_id__in=subject_ids)
                .exclude(pk__in=[image.pk for image in images])
                .values_list("subject_id", flat=True)
            )
            emptied_ids = subject_ids - remaining
            emptied_refs = list(Subject.objects.filter(pk__in=emptied_ids).values_list("external_ref", flat=True))
            removed = _delete_images(images=images, cause=RemovalCause.RETENTION, subject_refs=emptied_refs)
            with gallery_removal_permitted():
                Subject.objects.filter(pk__in=emptied_ids, images__isnull=True).delete()
            audit_event_record(
                action=AuditAction.GALLERY_PURGE,
                actor=actor,
                target=each,
                detail={
                    "gallery": each.name,
                    "images_deleted": removed["images"],
                    "templates_deleted": removed["templates"],
                    "subjects_deleted": len(emptied_ids),
                    "enrolment_items_scrubbed": removed["enrolment_items_scrubbed"],
                    "candidates_marked_removed": removed["candidates_marked_removed"],
                    "reason": reason,
                },
            )
        purged[each.name] = removed["images"]
    # The bound on erasure: every gallery's files are swept at each (daily) run, whatever happened before.
    index_snapshots_sweep(gallery_ids=[gallery.pk] if gallery is not None else None)
    return purged
