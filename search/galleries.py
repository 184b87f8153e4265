"""Galleries of lawfully held images: creating them, and deleting from them (on request, with a reason, or
under their retention rule). A deletion takes effect for searches the moment it commits, because every hit is
re-checked against the database (search.execution); the index catches up through the change log.
Enrolment into a gallery is search.enrolment.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import InvalidInput
from rfr.limits import text_limit_check
from search.index.changes import index_changes_record
from search.models import Gallery, GalleryImage, IndexChange, Subject, Template

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
def _delete_images(*, images: list[GalleryImage]) -> tuple[int, int]:
    """Delete images with their templates and index entries; files go once the transaction commits."""
    templates = list(Template.objects.filter(image__in=images).values_list("pk", "gallery_id", "pack_key"))
    by_index: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for pk, gallery_id, pack_key in templates:
        by_index.setdefault((gallery_id, pack_key), []).append((pk, IndexChange.Op.REMOVE))
    for (gallery_id, pack_key), changes in sorted(by_index.items()):
        index_changes_record(gallery_id=gallery_id, pack_key=pack_key, changes=changes)
    files = [(image.file.storage, image.file.name) for image in images if image.file.name]
    Template.objects.filter(pk__in=[pk for pk, _, _ in templates]).delete()
    GalleryImage.objects.filter(pk__in=[image.pk for image in images]).delete()

    def remove_files() -> None:
        for storage, name in files:
            try:
                storage.delete(str(name))
            except OSError:
                logger.exception("could not delete gallery file %s", name)

    transaction.on_commit(remove_files)
    return len(images), len(templates)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason_required", "A reason is required to delete gallery data.")
    return reason[:1000]


def subject_delete(*, subject: Subject, reason: str, actor: Actor = None, request: HttpRequest | None = None) -> dict:
    """Delete a subject, its images, files and templates; effective for searches as soon as it commits."""
    reason = _require_reason(reason)
    with transaction.atomic():
        subject = Subject.objects.select_for_update().select_related("gallery").get(pk=subject.pk)
        images, templates = _delete_images(images=list(subject.images.all()))
        detail = {
            "gallery": subject.gallery.name,
            "gallery_id": subject.gallery_id,
            "subject_id": subject.pk,
            "external_ref": subject.external_ref,
            "images_deleted": images,
            "templates_deleted": templates,
            "reason": reason,
        }
        audit_event_record(
            action=AuditAction.GALLERY_SUBJECT_DELETE, actor=actor, target=subject, request=request, detail=detail
        )
        subject.delete()
    return detail


def gallery_image_delete(
    *, image: GalleryImage, reason: str, actor: Actor = None, request: HttpRequest | None = None
) -> dict:
    reason = _require_reason(reason)
    with transaction.atomic():
        image = GalleryImage.objects.select_for_update().select_related("gallery", "subject").get(pk=image.pk)
        _, templates = _delete_images(images=[image])
        detail = {
            "gallery": image.gallery.name,
            "gallery_id": image.gallery_id,
            "subject_id": image.subject_id,
            "external_ref": image.subject.external_ref,
            "gallery_image_id": image.pk,
            "templates_deleted": templates,
            "reason": reason,
        }
        audit_event_record(
            action=AuditAction.GALLERY_IMAGE_DELETE, actor=actor, target=image, request=request, detail=detail
        )
    return detail


def gallery_purge_expired(*, gallery: Gallery | None = None, actor: Actor = None, now: Any = None) -> dict[str, int]:
    """Apply retention rules: delete images older than their gallery's retention_days (by capture date,
    or enrolment date where none was given), and subjects left with no images. Returns counts per gallery."""
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
            count, templates = _delete_images(images=images)
            emptied = Subject.objects.filter(pk__in=subject_ids, images__isnull=True)
            subjects = emptied.count()
            emptied.delete()
            audit_event_record(
                action=AuditAction.GALLERY_PURGE,
                actor=actor,
                target=each,
                detail={
                    "gallery": each.name,
                    "images_deleted": count,
                    "templates_deleted": templates,
                    "subjects_deleted": subjects,
                    "reason": reason,
                },
            )
        purged[each.name] = count
    return purged
