"""Small uploads through the admin run the enrolment pipeline; the stock admin delete is switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from search import galleries
from search.models import Gallery, GalleryImage, Subject, Template
from tests.factories import celeba_identities

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_upload_enrols_and_delete_is_audited(
    gallery_env: Path, faces_dir: Path, insightface_images: Path, client
) -> None:
    admin_user = get_user_model().objects.create_superuser("galleryadmin", "a@example.org", "x" * 16)
    client.force_login(admin_user)
    gallery = galleries.gallery_create(name="watch", kind=Gallery.Kind.WATCHLIST)
    _, files = next(iter(celeba_identities(faces_dir).items()))
    photo = (faces_dir / "celeba" / "images" / files[0]).read_bytes()

    response = client.post(
        "/admin/search/galleryimage/add/",
        {
            "gallery": gallery.pk,
            "subject_ref": "W-1",
            "upload": SimpleUploadedFile("p.jpg", photo, "image/jpeg"),
        },
    )
    assert response.status_code == 302
    image = GalleryImage.objects.get(subject__external_ref="W-1")
    assert Template.objects.filter(image=image).count() == 1
    assert AuditEvent.objects.filter(action="gallery.enrol", actor=admin_user).exists()

    group = (insightface_images / "t1.jpg").read_bytes()
    client.post(
        "/admin/search/galleryimage/add/",
        {
            "gallery": gallery.pk,
            "subject_ref": "W-2",
            "upload": SimpleUploadedFile("g.jpg", group, "image/jpeg"),
        },
    )
    assert not Subject.objects.filter(external_ref="W-2").exists()  # several faces: reported, not enrolled

    # The stock delete asks for no reason, so it is switched off (removal with a reason:
    # tests/test_erasure_admin.py).
    subject = Subject.objects.get(external_ref="W-1")
    response = client.post(f"/admin/search/subject/{subject.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Subject.objects.filter(pk=subject.pk).exists()
    assert not AuditEvent.objects.filter(action="gallery.subject_delete").exists()
