"""Files and rows stay in step: a database failure mid-upload, mid-processing or mid-enrolment leaves no file,
and the orphan sweep removes what a crash leaves while keeping every file a row names.

The failures are real: a trigger created by the test makes the database refuse the INSERT (on PostgreSQL and
SQLite alike), so the service's own transaction rolls back exactly as it would on a constraint or a lost
connection.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection

from audit.models import AuditEvent
from cases.housekeeping import storage_orphans_find, storage_orphans_sweep
from cases.models import Case, Probe, ProbeFace
from cases.probes import probe_process
from search.enrolment import gallery_image_enrol
from search.galleries import gallery_create
from search.models import GalleryImage, Template
from tests.factories import client_for, upload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def media(settings: Any, tmp_path: Path, eager_celery: None) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@contextmanager
def _refuse_insert(table: str, *, when: str = "") -> Iterator[None]:
    """A trigger that makes the database refuse inserts into `table` (those matching `when`, if given)."""
    name = f"faults_refuse_{table}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            condition = f"WHEN ({when.replace('NEW_', 'NEW.')})" if when else ""
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW {condition} EXECUTE FUNCTION {name}()"
            )
        else:
            condition = f"WHEN {when.replace('NEW_', 'NEW.')}" if when else ""
            cursor.execute(
                f"CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW {condition}"
                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if connection.vendor == "postgresql" else ""))
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP FUNCTION {name}()")


@pytest.fixture
def probe_insert_refused() -> Iterator[None]:
    with _refuse_insert("cases_probe"):
        yield


@pytest.fixture
def upload_audit_refused() -> Iterator[None]:
    # After the probe row is in: the audit event of the same transaction is refused.
    with _refuse_insert("audit_auditevent", when="NEW_action = 'probe.uploaded'"):
        yield


@pytest.mark.parametrize("failure", ["probe_insert_refused", "upload_audit_refused"])
def test_a_database_failure_mid_upload_leaves_no_file_and_loses_nothing_else(
    failure: str, media: Path, case: Case, people: dict[str, Any], insightface_images: Path, request: Any
) -> None:
    client = client_for(people["investigator"])
    data = (insightface_images / "t1.jpg").read_bytes()
    kept = upload(client, case, data, name="kept.jpg")
    assert kept.status_code == 201, kept.content
    before_files, before_events = _files(media), AuditEvent.objects.count()
    assert len(before_files) == 1

    request.getfixturevalue(failure)
    refused = upload(client, case, data, name="refused.jpg")
    assert refused.status_code == 500
    assert refused.json()["error"] == "server_error"
    assert _files(media) == before_files, "the refused upload's file was left behind"
    assert list(Probe.objects.values_list("original_name", flat=True)) == ["kept.jpg"]
    assert AuditEvent.objects.count() == before_events
    assert Path(media / str(Probe.objects.get().original.name)).read_bytes() == data


def test_face_crops_of_a_failed_processing_are_removed(
    media: Path, case: Case, people: dict[str, Any], insightface_images: Path
) -> None:
    response = upload(client_for(people["investigator"]), case, (insightface_images / "t1.jpg").read_bytes())
    probe_id = response.json()["id"]
    original = _files(media)
    with _refuse_insert("cases_probeface"):
        with pytest.raises(DatabaseError):
            probe_process(probe_id=probe_id)
        assert _files(media) == original, "face crops of the rolled-back faces were left behind"
        assert not ProbeFace.objects.exists()
    probe_process(probe_id=probe_id)  # once the database accepts them again, faces and crops are stored
    crops = [name for name in _files(media) if "/faces/" in name]
    assert len(crops) == ProbeFace.objects.count() == 6
    assert sorted(crops) == sorted(ProbeFace.objects.values_list("aligned_crop", flat=True))


@pytest.mark.parametrize("table,when", [("search_template", ""), ("audit_auditevent", "NEW_action = 'gallery.enrol'")])
def test_a_failed_gallery_enrolment_leaves_no_image_file(
    table: str, when: str, media: Path, insightface_images: Path
) -> None:
    gallery = gallery_create(name="Custody", kind="custody")
    data = (insightface_images / "Tom_Hanks_54745.png").read_bytes()
    with _refuse_insert(table, when=when):
        # The template insert fails inside the enrolment's own block; the audit insert fails in the enclosing
        # one, after the inner block succeeded: either way the image file goes with the rows.
        with pytest.raises(DatabaseError):
            gallery_image_enrol(gallery=gallery, data=data, subject_ref="CUST-1", original_filename="a.png")
        assert _files(media) == []
        assert not GalleryImage.objects.exists() and not Template.objects.exists()
    image = gallery_image_enrol(gallery=gallery, data=data, subject_ref="CUST-1", original_filename="a.png")
    assert image is not None and _files(media) == [image.file.name]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_old_orphans_keeps_named_and_young_files_and_audits_counts(
    media: Path, case: Case, people: dict[str, Any], insightface_images: Path
) -> None:
    response = upload(client_for(people["investigator"]), case, (insightface_images / "t1.jpg").read_bytes())
    named = media / str(Probe.objects.get(pk=response.json()["id"]).original.name)
    gallery = gallery_create(name="Custody", kind="custody")
    image = gallery_image_enrol(
        gallery=gallery,
        data=(insightface_images / "Tom_Hanks_54745.png").read_bytes(),
        subject_ref="CUST-1",
        original_filename="a.png",
    )
    assert image is not None
    gallery_file = media / str(image.file.name)
    orphans = {
        media / f"probes/case-{case.pk}/ab/{'ab' * 32}.jpg": b"orphan original",
        media / f"probes/case-{case.pk}/faces/probe-999-face-1.png": b"orphan crop",
        media / f"galleries/{gallery.pk}/cd/{'cd' * 32}.png": b"orphan gallery image",
    }
    young = media / f"probes/case-{case.pk}/ef/{'ef' * 32}.jpg"
    for path, data in [*orphans.items(), (young, b"an upload in flight")]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in [*orphans, named, gallery_file]:
        _age(path, 2 * 3600)

    found = storage_orphans_find()
    assert sorted(f.name for f in found) == sorted(p.relative_to(media).as_posix() for p in orphans)
    assert {f.kind for f in found} == {"probe_original", "face_crop", "gallery_image"}

    call_command("storage", "sweep", "--dry-run")
    assert all(path.exists() for path in orphans) and not AuditEvent.objects.filter(action="storage.orphans_removed")

    report = storage_orphans_sweep()
    assert report.removed and len(report.files) == 3 and report.bytes == sum(len(d) for d in orphans.values())
    assert not any(path.exists() for path in orphans)
    assert named.exists() and gallery_file.exists() and young.exists()
    event = AuditEvent.objects.get(action="storage.orphans_removed")
    assert event.detail == {
        "files": 3,
        "bytes": report.bytes,
        "by_kind": {"face_crop": 1, "gallery_image": 1, "probe_original": 1},
        "grace_seconds": 3600,
    }
    assert "probes/" not in str(event.detail) and event.actor_id is None
    assert storage_orphans_sweep().files == []  # nothing left; a second sweep changes nothing and audits nothing
    assert AuditEvent.objects.filter(action="storage.orphans_removed").count() == 1
    # With no grace, the young file is an orphan too: the command removes it and says so.
    call_command("storage", "sweep", "--grace-seconds", "0")
    assert not young.exists() and named.exists() and gallery_file.exists()
