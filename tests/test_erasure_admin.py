"""Removal always records a reason, whatever the path: the Django admin's own delete is switched off in favour
of an action that asks for a reason, and the gallery models refuse a delete made outside the removal services
(the ORM, a shell, a script)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client

from audit.models import AuditEvent
from rfr.errors import Forbidden
from search import galleries
from search.models import Gallery, GalleryImage, Subject, Template

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def _subject(gallery: Gallery, ref: str) -> Subject:
    subject = Subject.objects.create(gallery=gallery, external_ref=ref)
    image = GalleryImage(gallery=gallery, subject=subject, sha256=f"{ref:0>64}"[-64:], original_filename=f"{ref}.png")
    image.file.save(f"{ref}.png", ContentFile(b"not really a png"), save=False)
    image.save()
    Template.objects.create(
        gallery=gallery,
        subject=subject,
        image=image,
        pack_key="test-pack@1",
        box=[0, 0, 1, 1],
        landmarks=[],
        embedding=np.ones(128, "<f4").tobytes(),
    )
    return subject


@pytest.fixture
def admin_client(gallery_env: Any) -> tuple[Client, Any]:
    user = get_user_model().objects.create_superuser("gallery-keeper", "k@example.org", "x" * 16)
    client = Client()
    client.force_login(user)
    return client, user


def _action(client: Client, model: str, action: str, pks: list[int], **extra: str) -> Any:
    return client.post(
        f"/admin/search/{model}/", {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    )


def test_the_admin_delete_is_off_and_the_removal_action_asks_for_a_reason(admin_client: tuple[Client, Any]) -> None:
    client, user = admin_client
    gallery = galleries.gallery_create(name="custody", kind=Gallery.Kind.CUSTODY)
    subject = _subject(gallery, "CUST-A")
    other = _subject(gallery, "CUST-B")

    # The stock delete (page and bulk action) asks for no reason, so it is not there.
    assert client.get(f"/admin/search/subject/{subject.pk}/delete/").status_code == 403
    assert client.post(f"/admin/search/subject/{subject.pk}/delete/", {"post": "yes"}).status_code == 403
    _action(client, "subject", "delete_selected", [subject.pk], post="yes")
    page = client.get("/admin/search/subject/").content.decode()
    assert "delete_selected" not in page and "remove_with_reason" in page
    assert Subject.objects.filter(pk=subject.pk).exists()

    # The removal action shows a form; without a reason (or with blanks) nothing is removed.
    form = _action(client, "subject", "remove_with_reason", [subject.pk])
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    assert "Reason (required)" in form.content.decode()
    for reason in ("", "   "):
        again = _action(client, "subject", "remove_with_reason", [subject.pk], apply="yes", reason=reason)
        assert again.status_code == 200 and "errornote" in again.content.decode()
        assert Subject.objects.filter(pk=subject.pk).exists()
    assert not AuditEvent.objects.filter(action="gallery.subject_delete").exists()

    # With a reason it goes through the service: audited with that reason and that person.
    done = _action(
        client, "subject", "remove_with_reason", [subject.pk], apply="yes", reason="deletion request 2026/17 agreed"
    )
    assert done.status_code == 302
    assert not Subject.objects.filter(pk=subject.pk).exists() and Subject.objects.filter(pk=other.pk).exists()
    event = AuditEvent.objects.get(action="gallery.subject_delete")
    assert event.detail["reason"] == "deletion request 2026/17 agreed" and event.actor == user

    # The same for one image.
    image = GalleryImage.objects.get(subject=other)
    assert client.post(f"/admin/search/galleryimage/{image.pk}/delete/", {"post": "yes"}).status_code == 403
    _action(client, "galleryimage", "remove_with_reason", [image.pk], apply="yes", reason="")
    assert GalleryImage.objects.filter(pk=image.pk).exists()
    _action(client, "galleryimage", "remove_with_reason", [image.pk], apply="yes", reason="wrong person")
    assert not GalleryImage.objects.filter(pk=image.pk).exists()
    assert AuditEvent.objects.get(action="gallery.image_delete").detail["reason"] == "wrong person"


def test_the_models_refuse_a_delete_outside_the_services(gallery_env: Any) -> None:
    gallery = galleries.gallery_create(name="custody", kind=Gallery.Kind.CUSTODY)
    subject = _subject(gallery, "CUST-C")
    image = GalleryImage.objects.get(subject=subject)
    for delete in (
        subject.delete,
        image.delete,
        Template.objects.get(image=image).delete,
        Subject.objects.filter(pk=subject.pk).delete,
        GalleryImage.objects.filter(pk=image.pk).delete,
        Template.objects.filter(image=image).delete,
        subject.images.all().delete,
        gallery.delete,  # would cascade to its subjects
        Gallery.objects.filter(pk=gallery.pk).delete,
    ):
        with pytest.raises(Forbidden, match="with a reason"):
            delete()
    assert Template.objects.filter(image=image).exists() and Subject.objects.filter(pk=subject.pk).exists()
    assert not AuditEvent.objects.filter(action__startswith="gallery.").exclude(action="gallery.create").exists()

    # A gallery that holds nobody holds no biometric, so it may go.
    empty = galleries.gallery_create(name="empty", kind=Gallery.Kind.WATCHLIST)
    empty.delete()
    assert not Gallery.objects.filter(pk=empty.pk).exists()
