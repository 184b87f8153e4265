"""rfr's own gallery pages (/manage/galleries/): admins only; bulk enrolment from a zip upload or a server
folder with per-file errors; zip-slip, symbolic links, zip bombs and folders outside the configured roots
refused; subject and image removal with a reason; retention edit and "purge expired now"; every action audited.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMIN, SUPERVISOR
from audit.models import AuditEvent
from rfr.engine import active_engine
from search.galleries import gallery_create
from search.models import EnrolmentItem, EnrolmentRun, Gallery, GalleryImage, Subject, Template
from tests.factories import celeba_identities, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


@pytest.fixture
def admin_client(gallery_env: Path, eager_celery: None) -> Client:
    client = Client()
    client.force_login(make_user("ada", role=ADMIN))
    return client


@pytest.fixture
def custody() -> Gallery:
    return gallery_create(name="Custody 2026", kind=Gallery.Kind.CUSTODY, provenance="PACE s.64A custody images")


def _faces(faces_dir: Path, count: int) -> list[tuple[str, bytes]]:
    """The first image of `count` CelebA identities, as (identity, bytes)."""
    images = faces_dir / "celeba" / "images"
    chosen = list(celeba_identities(faces_dir).items())[:count]
    return [(identity, (images / files[0]).read_bytes()) for identity, files in chosen]


def _noise_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", noise)
    assert ok
    return encoded.tobytes()


def _zip(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _upload(client: Client, gallery: Gallery, data: bytes, name: str = "batch.zip") -> Any:
    archive = io.BytesIO(data)
    archive.name = name
    return client.post(reverse("search:manage-gallery-enrol-zip", args=[gallery.pk]), {"archive": archive})


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _uploads_left(root: Path) -> list[Path]:
    folder = root / "enrolment-uploads"
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_zip_upload_enrols_faces_and_lists_each_file_that_failed(
    admin_client: Client, custody: Gallery, faces_dir: Path, gallery_env: Path
) -> None:
    faces = _faces(faces_dir, 3)
    csv_rows = ["file,subject_ref,note"]
    members: dict[str, bytes] = {}
    for n, (identity, data) in enumerate(faces):
        members[f"batch/images/face{n}.jpg"] = data
        csv_rows.append(f"images/face{n}.jpg,CUST-{identity},arrest {n}")
    members["batch/images/noface.png"] = _noise_png()
    members["batch/images/corrupt.jpg"] = b"\xff\xd8\xff\xe0 not really a jpeg"
    csv_rows += ["images/noface.png,CUST-NOFACE,", "images/corrupt.jpg,CUST-CORRUPT,"]
    members["batch/subjects.csv"] = ("\n".join(csv_rows) + "\n").encode()

    response = _upload(admin_client, custody, _zip(members))

    run = EnrolmentRun.objects.get(gallery=custody)
    assert response.status_code == 302 and response["Location"] == reverse("search:manage-enrolment-run", args=[run.pk])
    run.refresh_from_db()
    assert run.status == EnrolmentRun.Status.FINISHED
    assert run.counts == {"pending": 0, "enrolled": 3, "skipped": 0, "failed": 2}
    pack_key = active_engine().pack.key
    assert Template.objects.filter(gallery=custody, pack_key=pack_key).count() == 3
    assert set(Subject.objects.filter(gallery=custody).values_list("external_ref", flat=True)) == {
        f"CUST-{identity}" for identity, _ in faces
    }
    assert Subject.objects.get(external_ref=f"CUST-{faces[0][0]}").attributes == {"note": "arrest 0"}
    failed = dict(run.items.filter(status=EnrolmentItem.Status.FAILED).values_list("subject_ref", "message"))
    assert failed["CUST-NOFACE"] == "no face found"
    assert failed["CUST-CORRUPT"]
    # The extracted copies are gone once the run is over; the enrolled images are in the gallery's storage.
    assert _uploads_left(gallery_env) == []
    assert all(Path(image.file.path).is_file() for image in GalleryImage.objects.filter(gallery=custody))

    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "images/noface.png" in html and "no face found" in html and "images/corrupt.jpg" in html
    assert "Finished: 3 enrolled" in html
    assert "data-manage-poll" not in html  # finished: nothing left to poll
    assert "<script>" not in html  # no inline script (CSP); the polling is static/js/manage.js
    status = admin_client.get(reverse("search:manage-enrolment-run-status", args=[run.pk])).json()
    assert status["status"] == "done" and status["progress"] == 100
    assert status["counts"] == {"pending": 0, "enrolled": 3, "skipped": 0, "failed": 2}

    start = AuditEvent.objects.get(action="gallery.enrol_start")
    assert start.actor_username == "ada" and start.detail["files"] == 5 and start.detail["run_id"] == run.pk
    finish = AuditEvent.objects.get(action="gallery.enrol", detail__run_id=run.pk)
    assert finish.detail["enrolled"] == 3 and finish.detail["failed"] == 2


def test_a_running_run_page_polls_its_status(admin_client: Client, custody: Gallery) -> None:
    run = EnrolmentRun.objects.create(gallery=custody, actor_name="ada", source="zip upload x.zip")
    EnrolmentItem.objects.create(run=run, path="/nowhere/a.jpg", subject_ref="A")
    EnrolmentItem.objects.create(run=run, path="/nowhere/b.jpg", subject_ref="B", status="enrolled")
    html = admin_client.get(reverse("search:manage-enrolment-run", args=[run.pk])).content.decode()
    status_url = reverse("search:manage-enrolment-run-status", args=[run.pk])
    assert f'data-manage-poll="{status_url}"' in html and "js/manage.js" in html
    status = admin_client.get(status_url).json()
    assert status["status"] == "processing" and status["progress"] == 50 and status["done"] == 1


@pytest.mark.parametrize(
    ("members", "symlinks", "code"),
    [
        ({"subjects.csv": b"file,subject_ref\n", "../escaped.jpg": b"x"}, None, "outside its own folder"),
        ({"subjects.csv": b"file,subject_ref\n", "/etc/escaped.jpg": b"x"}, None, "outside its own folder"),
        ({"subjects.csv": b"file,subject_ref\n", "a/../../escaped.jpg": b"x"}, None, "outside its own folder"),
        ({"subjects.csv": b"file,subject_ref\nlink.jpg,L\n"}, {"link.jpg": "/etc/passwd"}, "symbolic link"),
    ],
)
def test_zip_slip_and_symbolic_links_are_refused_whole(
    admin_client: Client,
    custody: Gallery,
    gallery_env: Path,
    members: dict[str, bytes],
    symlinks: dict[str, str] | None,
    code: str,
) -> None:
    response = _upload(admin_client, custody, _zip(members, symlinks=symlinks))
    assert response.status_code == 302
    assert response["Location"] == reverse("search:manage-gallery", args=[custody.pk]) + "#enrol"
    assert any(code in message for message in _messages(response))
    assert not EnrolmentRun.objects.exists()
    assert not (gallery_env.parent / "escaped.jpg").exists() and not (gallery_env / "escaped.jpg").exists()
    assert _uploads_left(gallery_env) == []


def test_zip_bombs_and_non_zips_are_refused_before_extraction(
    admin_client: Client, custody: Gallery, gallery_env: Path, settings: Any
) -> None:
    settings.RFR_ENROLMENT_ZIP_MAX_MEMBERS = 3
    settings.RFR_ENROLMENT_ZIP_MAX_UNCOMPRESSED_BYTES = 100_000
    many = _upload(admin_client, custody, _zip({f"{n}.jpg": b"x" for n in range(4)}))
    assert any("more than 3 files" in message for message in _messages(many))
    # 1 MB of zeros compresses to about a kilobyte: the declared size is checked before anything is written.
    bomb = _upload(admin_client, custody, _zip({"subjects.csv": b"file,subject_ref\n", "big.jpg": bytes(1_000_000)}))
    assert any("too large once unpacked" in message for message in _messages(bomb))
    not_zip = _upload(admin_client, custody, b"PK\x03\x04 this is not a zip")
    assert any("not a zip archive" in message for message in _messages(not_zip))
    no_csv = _upload(admin_client, custody, _zip({"images/a.jpg": b"x"}))
    assert any("no subjects.csv" in message for message in _messages(no_csv))
    assert not EnrolmentRun.objects.exists()
    assert _uploads_left(gallery_env) == []


def _lying_zip() -> bytes:
    """A zip whose directory says its member is 10 bytes when 1 MB comes out of it."""
    data = bytearray(_zip({"subjects.csv": b"file,subject_ref\nbig.jpg,B\n", "big.jpg": bytes(1_000_000)}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo("big.jpg").header_offset
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # the second entry: big.jpg
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    return bytes(data)


def test_damaged_duplicate_and_lying_zips_are_refused(
    admin_client: Client, custody: Gallery, gallery_env: Path
) -> None:
    csv_only = b"file,subject_ref\na.jpg,A\n"
    damaged = bytearray(_zip({"subjects.csv": csv_only, "a.jpg": b"some image bytes " * 100}))
    damaged[damaged.index(b"some image") + 5] ^= 0xFF  # stored, not compressed: the CRC no longer matches
    response = _upload(admin_client, custody, bytes(damaged))
    assert any("cannot be unpacked" in m for m in _messages(response))
    buffer = io.BytesIO(_zip({"subjects.csv": csv_only, "a.jpg": b"one"}))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("a.jpg", b"two")
    response = _upload(admin_client, custody, buffer.getvalue())
    assert any("holds a.jpg twice" in m for m in _messages(response))
    lying = _upload(admin_client, custody, _lying_zip())
    assert any("cannot be unpacked" in m for m in _messages(lying))
    assert not EnrolmentRun.objects.exists()
    assert _uploads_left(gallery_env) == []


def test_server_folder_inside_the_roots_enrols_and_outside_is_refused(
    admin_client: Client, custody: Gallery, faces_dir: Path, tmp_path: Path, settings: Any
) -> None:
    root = tmp_path / "enrolment-root"
    batch = root / "batch-1"
    batch.mkdir(parents=True)
    (identity, data), _ = _faces(faces_dir, 2)
    (batch / "face.jpg").write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(_faces(faces_dir, 2)[1][1])
    (outside / "subjects.csv").write_text("file,subject_ref\nsecret.jpg,SECRET\n")
    # A link inside the root that leads out of it, for a folder and for a single file.
    os.symlink(outside, root / "sneaky")
    os.symlink(outside / "secret.jpg", batch / "linked.jpg")
    (batch / "subjects.csv").write_text(f"file,subject_ref\nface.jpg,CUST-{identity}\nlinked.jpg,LINKED\n")
    url = reverse("search:manage-gallery-enrol-folder", args=[custody.pk])

    settings.RFR_ENROLMENT_ROOTS = []
    refused = admin_client.post(url, {"folder": str(batch)})
    assert any("RFR_ENROLMENT_ROOTS" in message for message in _messages(refused))

    settings.RFR_ENROLMENT_ROOTS = [root.resolve()]
    for folder in (str(outside), str(root / ".." / "outside"), str(root / "sneaky"), "../outside", "/etc"):
        response = admin_client.post(url, {"folder": folder})
        assert response.status_code == 302, folder
        assert any("outside the folders open for enrolment" in m for m in _messages(response)), folder
    assert not EnrolmentRun.objects.exists()

    response = admin_client.post(url, {"folder": "batch-1"})
    run = EnrolmentRun.objects.get()
    assert response["Location"] == reverse("search:manage-enrolment-run", args=[run.pk])
    assert run.counts["enrolled"] == 1 and run.counts["failed"] == 1
    linked = run.items.get(subject_ref="LINKED")
    assert linked.message == "the file leads outside the folders open for enrolment"
    assert list(custody.subjects.values_list("external_ref", flat=True)) == [f"CUST-{identity}"]
    # A folder's files are the operator's: they are left where they were.
    assert (batch / "face.jpg").is_file()


def test_an_unfinished_run_is_resumed_from_its_page(
    admin_client: Client, custody: Gallery, faces_dir: Path, tmp_path: Path
) -> None:
    from search.enrolment import EnrolmentEntry, enrolment_run_create

    folder = tmp_path / "batch"
    folder.mkdir()
    (identity, data), _ = _faces(faces_dir, 2)
    (folder / "face.jpg").write_bytes(data)
    # A run whose worker died before doing anything: its items are all still pending.
    run = enrolment_run_create(
        gallery=custody, images_dir=folder, entries=[EnrolmentEntry("face.jpg", f"CUST-{identity}", {})], source="t"
    )
    page = admin_client.get(reverse("search:manage-enrolment-run", args=[run.pk])).content.decode()
    assert f"Resume run {run.pk}" in page
    resume_url = reverse("search:manage-enrolment-run-resume", args=[run.pk])
    response = admin_client.post(resume_url)
    assert response["Location"] == reverse("search:manage-enrolment-run", args=[run.pk])
    run.refresh_from_db()
    assert run.status == EnrolmentRun.Status.FINISHED and run.counts["enrolled"] == 1
    event = AuditEvent.objects.get(action="gallery.enrol_resume")
    assert event.detail == {"run_id": run.pk, "gallery": custody.name, "pending": 1} and event.actor_username == "ada"
    again = admin_client.post(resume_url)
    assert any("no files left" in m for m in _messages(again))
    assert AuditEvent.objects.filter(action="gallery.enrol_resume").count() == 1
    assert "Resume run" not in admin_client.get(again["Location"]).content.decode()


def test_subject_and_image_removal_need_a_reason_and_are_audited(
    admin_client: Client, custody: Gallery, faces_dir: Path, engine: Any
) -> None:
    from search.enrolment import gallery_image_enrol

    (one, two) = _faces(faces_dir, 2)
    first = gallery_image_enrol(gallery=custody, data=one[1], subject_ref="CUST-1", engine=engine)
    second = gallery_image_enrol(gallery=custody, data=two[1], subject_ref="CUST-2", engine=engine)
    assert first is not None and second is not None
    subject = first.subject
    file_path = Path(first.file.path)

    page = admin_client.get(reverse("search:manage-subject", args=[subject.pk]))
    assert page.status_code == 200 and b'<label for="id_reason">Reason</label>' in page.content
    remove_url = reverse("search:manage-subject-remove", args=[subject.pk])
    no_reason = admin_client.post(remove_url, {"reason": "  "})
    assert no_reason.status_code == 302 and no_reason["Location"].endswith("#remove")
    assert Subject.objects.filter(pk=subject.pk).exists()
    assert not AuditEvent.objects.filter(action="gallery.subject_delete").exists()

    removed = admin_client.post(remove_url, {"reason": "Deletion request DR-2026-17: no further action"})
    assert removed["Location"] == reverse("search:manage-gallery", args=[custody.pk])
    assert not Subject.objects.filter(pk=subject.pk).exists()
    assert not Template.objects.filter(subject_id=subject.pk).exists()
    assert not file_path.exists()
    event = AuditEvent.objects.get(action="gallery.subject_delete")
    assert event.actor_username == "ada" and event.detail["reason"] == "Deletion request DR-2026-17: no further action"
    assert event.detail["external_ref"] == "CUST-1" and event.detail["images_deleted"] == 1

    image_url = reverse("search:manage-image-remove", args=[second.pk])
    assert admin_client.post(image_url, {"reason": ""}).status_code == 302
    assert GalleryImage.objects.filter(pk=second.pk).exists()
    admin_client.post(image_url, {"reason": "wrong person photographed"})
    assert not GalleryImage.objects.filter(pk=second.pk).exists()
    image_event = AuditEvent.objects.get(action="gallery.image_delete")
    assert image_event.detail["reason"] == "wrong person photographed" and image_event.actor_username == "ada"


def test_create_list_detail_retention_and_purge_now(admin_client: Client, faces_dir: Path, engine: Any) -> None:
    from search.enrolment import gallery_image_enrol

    new = admin_client.get(reverse("search:manage-gallery-new"))
    assert new.status_code == 200 and b"Provenance and legal basis" in new.content
    created = admin_client.post(
        reverse("search:manage-gallery-new"),
        {
            "name": "Watchlist A",
            "kind": "watchlist",
            "provenance": "Authorised by Supt Example under force policy WL-3",
            "retention_days": "",
            "index_mode": "exact",
        },
    )
    gallery = Gallery.objects.get(name="Watchlist A")
    assert created["Location"] == reverse("search:manage-gallery", args=[gallery.pk])
    assert gallery.provenance == "Authorised by Supt Example under force policy WL-3" and gallery.retention_days is None
    assert AuditEvent.objects.get(action="gallery.create").actor_username == "ada"
    duplicate = admin_client.post(
        reverse("search:manage-gallery-new"), {"name": "Watchlist A", "kind": "watchlist", "provenance": "x"}
    )
    assert duplicate.status_code == 400 and Gallery.objects.count() == 1

    image = gallery_image_enrol(gallery=gallery, data=_faces(faces_dir, 1)[0][1], subject_ref="W-1", engine=engine)
    assert image is not None
    listing = admin_client.get(reverse("search:manage-galleries")).content.decode()
    assert "Watchlist A" in listing and "Authorised by Supt Example" in listing
    assert f"<code>{engine.pack.key}</code>: 1" in listing and "kept until removed" in listing
    detail = admin_client.get(reverse("search:manage-gallery", args=[gallery.pk])).content.decode()
    assert "W-1" in detail and "Purge expired images now" not in detail
    # Each help text is the one its input names in aria-describedby, so a screen reader reads them together.
    described = set(re.findall(r'aria-describedby="([^"]+)"', detail))
    helps = set(re.findall(r'<small id="([^"]+)"', detail))
    assert described and described == helps, (described, helps)

    purge_url = reverse("search:manage-gallery-purge", args=[gallery.pk])
    refused = admin_client.post(purge_url)
    assert any("set a retention period first" in m for m in _messages(refused))

    retention_url = reverse("search:manage-gallery-retention", args=[gallery.pk])
    assert admin_client.post(retention_url, {"retention_days": "0"}).status_code == 302
    gallery.refresh_from_db()
    assert gallery.retention_days is None
    admin_client.post(retention_url, {"retention_days": "30"})
    gallery.refresh_from_db()
    assert gallery.retention_days == 30
    event = AuditEvent.objects.get(action="gallery.retention_set")
    assert event.detail == {"gallery": "Watchlist A", "before": None, "after": 30} and event.actor_username == "ada"

    # Nothing has expired yet: the request is still audited.
    admin_client.post(purge_url)
    assert GalleryImage.objects.filter(pk=image.pk).exists()
    assert AuditEvent.objects.get(action="gallery.purge_requested").detail["images_deleted"] == 0
    GalleryImage.objects.filter(pk=image.pk).update(captured_at="2020-01-01")
    purged = admin_client.post(purge_url)
    assert any("1 expired images deleted" in m for m in _messages(purged))
    assert not GalleryImage.objects.filter(pk=image.pk).exists()
    assert AuditEvent.objects.get(action="gallery.purge").actor_username == "ada"
    assert AuditEvent.objects.filter(action="gallery.purge_requested").count() == 2


def test_only_admins_may_use_the_gallery_pages(gallery_env: Path, custody: Gallery, eager_celery: None) -> None:
    subject = Subject.objects.create(gallery=custody, external_ref="CUST-9")
    run = EnrolmentRun.objects.create(gallery=custody, actor_name="x")
    gets = [
        reverse("search:manage-galleries"),
        reverse("search:manage-gallery-new"),
        reverse("search:manage-gallery", args=[custody.pk]),
        reverse("search:manage-subject", args=[subject.pk]),
        reverse("search:manage-enrolment-run", args=[run.pk]),
        reverse("search:manage-enrolment-run-status", args=[run.pk]),
        reverse("search:manage-thresholds"),
    ]
    posts = [
        (reverse("search:manage-subject-remove", args=[subject.pk]), {"reason": "because"}),
        (reverse("search:manage-gallery-retention", args=[custody.pk]), {"retention_days": "1"}),
        (reverse("search:manage-gallery-purge", args=[custody.pk]), {}),
        (reverse("search:manage-enrolment-run-resume", args=[run.pk]), {}),
        (reverse("search:manage-gallery-enrol-folder", args=[custody.pk]), {"folder": "/tmp"}),
        (reverse("search:manage-gallery-new"), {"name": "Mine", "kind": "custody", "provenance": "x"}),
    ]
    anonymous = Client()
    for url in gets:
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    for role in (None, SUPERVISOR):
        client = Client()
        client.force_login(make_user(f"user-{role}", role=role))
        for url in gets:
            assert client.get(url).status_code == 403, (role, url)
        for url, data in posts:
            assert client.post(url, data).status_code == 403, (role, url)
    assert Subject.objects.filter(pk=subject.pk).exists()
    assert Gallery.objects.count() == 1 and Gallery.objects.get().retention_days is None
    assert not AuditEvent.objects.filter(action__in=["gallery.subject_delete", "gallery.retention_set"]).exists()


def test_thresholds_page_shows_the_defaults_in_force(admin_client: Client) -> None:
    page = admin_client.get(reverse("search:manage-thresholds"))
    assert page.status_code == 200
    assert b"Defaults in force" in page.content and b"RFR_DEFAULT_THRESHOLD" in page.content
