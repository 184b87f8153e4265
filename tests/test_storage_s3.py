"""Every stored file in an S3-compatible object store (RFR_STORAGE=s3), against a real S3 server started here.

The server is moto's server mode (`moto.server.ThreadedMotoServer`, a real HTTP S3 API in a thread of this
process) on a port of this test process's own (tests.parallel.port_of_worker). Nothing is mocked inside rfr:
the settings are switched with the same function the environment drives (rfr.objectstore.storages_switch),
and django-storages talks to the server over HTTP as it would to MinIO or AWS.

- in-process: a bulk enrolment run from a folder copies its items into the bucket and enrols them from there;
  a probe is uploaded and processed, searched, its images and the candidate's fetched through the app (need to
  know and audit as ever: never a bucket URL); deleting a subject removes its images from the bucket; the
  orphan sweep finds and removes unreferenced objects and keeps referenced ones;
- across processes: `manage.py gallery enrol` with the whole world in the bucket and two real Celery worker
  processes, which share no data folder with the command: they read the items from the bucket only.

Skipped only where moto is not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.models import AuditEvent
from cases.housekeeping import storage_orphans_find, storage_orphans_sweep
from cases.models import Candidate, Case, Probe
from rfr.objectstore import local_storages, storages_switch
from rfr.queues import ALL_QUEUES
from search import enrolment
from search.galleries import gallery_create, subject_delete
from search.models import EnrolmentItem, EnrolmentRun, GalleryImage, Subject
from tests import parallel
from tests.factories import celeba_identities, client_for, index_storage_at, upload, write_subjects_csv
from tests.test_gallery_celery import _redis_url
from tests.test_gallery_resume import REPO, World, scratch_database

moto_server = pytest.importorskip("moto.server", reason="moto (server mode) is not installed")
boto3 = pytest.importorskip("boto3")

S3_PORT = parallel.port_of_worker(5710)
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rfr-test", "AWS_SECRET_ACCESS_KEY": "rfr-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{S3_PORT}"
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **_keys())


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": "rfr-test-secret"}


def _keys_in(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"rfr-test-{uuid.uuid4().hex[:12]}"
    client = _client(s3_endpoint)
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture
def s3_media(settings: Any, tmp_path: Path, bucket: tuple[Any, str], s3_endpoint: str) -> tuple[Any, str]:
    """Every media entry of STORAGES in the bucket, as RFR_STORAGE=s3 would make them; the local media folder
    is pointed at an empty place so that a stray local write would show."""
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media-must-stay-empty"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.STORAGES = storages_switch(
        {**local_storages(), "index": index_storage_at(tmp_path / "index")},  # index snapshots in the bucket too
        backend="s3",
        data_dir=tmp_path,
        bucket=bucket[1],
        endpoint_url=s3_endpoint,
        region=REGION,
        addressing_style="path",
    )
    return bucket


def _celeba_rows(faces_dir: Path, identities: int, each: int) -> list[tuple[str, str]]:
    chosen = [(ref, files) for ref, files in celeba_identities(faces_dir).items() if len(files) >= each + 1]
    return [(file, f"CUST-{ref}") for ref, files in chosen[:identities] for file in files[:each]]


@pytest.mark.django_db
def test_the_whole_path_with_every_file_in_the_object_store(
    s3_media: tuple[Any, str],
    faces_dir: Path,
    case: Case,
    people: dict[str, Any],
    run_on_commit: Callable[..., Any],
    tmp_path: Path,
) -> None:
    client, bucket = s3_media
    images_dir = faces_dir / "celeba" / "images"
    rows = _celeba_rows(faces_dir, identities=4, each=3)
    gallery = gallery_create(name="Custody S3", kind="custody")

    # Bulk enrolment from a server folder: the items are copied into the bucket, then enrolled from there.
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", [*rows, ("missing.jpg", "CUST-missing")])
    entries = enrolment.enrolment_entries_read(images_dir=images_dir, subjects_csv=csv_path)
    run = enrolment.enrolment_run_create(gallery=gallery, images_dir=images_dir, entries=entries, source="s3")
    enrolment.enrolment_run_import(run=run)
    staged = _keys_in(client, bucket, f"media/enrolment-uploads/{run.staging_key}/")
    assert len(staged) == len(rows)  # every file the CSV names and the folder holds, nothing else
    run = enrolment.enrolment_run_execute(run=run, in_process=True, progress=False)
    assert run.counts["enrolled"] >= len(rows) - 2 and run.counts["pending"] == 0
    assert EnrolmentItem.objects.get(run=run, path="missing.jpg").message == "file not found"
    assert not _keys_in(client, bucket, "media/enrolment-uploads/")  # the copies go when the run finishes
    images = list(GalleryImage.objects.filter(gallery=gallery).select_related("subject"))
    gallery_keys = _keys_in(client, bucket, "media/galleries/")
    assert sorted(f"media/{image.file.name}" for image in images) == gallery_keys
    original = next(image for image in images)
    body = client.get_object(Bucket=bucket, Key=f"media/{original.file.name}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == original.sha256

    # A probe of an enrolled identity (a photo not itself enrolled), processed with its files in the bucket.
    ref, files = next((ref, files) for ref, files in celeba_identities(faces_dir).items() if f"CUST-{ref}" in {
        image.subject.external_ref for image in images
    })  # fmt: skip
    probe_bytes = (images_dir / files[3]).read_bytes()
    investigator = client_for(people["investigator"])
    response = run_on_commit(lambda: upload(investigator, case, probe_bytes, files[3]))
    assert response.status_code == 201, response.json()
    probe = Probe.objects.get(pk=response.json()["id"])
    assert probe.status == Probe.Status.DONE, probe.error_message
    probe_keys = _keys_in(client, bucket, "media/probes/")
    assert f"media/{probe.original.name}" in probe_keys
    assert all(f"media/{face.aligned_crop.name}" in probe_keys for face in probe.faces.all())
    assert not Path(tmp_path / "media-must-stay-empty").exists()  # nothing written to local disk

    face = probe.faces.order_by("index").first()
    assert face is not None
    created = run_on_commit(
        lambda: investigator.post(
            f"/api/faces/{face.pk}/searches/",
            {"galleries": [gallery.pk], "justification": "CCTV of the robbery"},
            format="json",
        )
    )
    assert created.status_code == 201, created.json()
    candidates = list(Candidate.objects.filter(search_id=created.json()["id"]).order_by("rank"))
    assert candidates and candidates[0].subject_ref == f"CUST-{ref}"

    # Images through the app only: streamed from the bucket by the views, after the access check and the audit.
    from django.test import Client

    web = Client()
    web.force_login(people["investigator"])
    viewed = AuditEvent.objects.filter(action__in=["probe.image_viewed", "candidate.image_viewed"]).count()
    for url, expected in [
        (f"/probes/{probe.pk}/image", probe_bytes),
        (f"/candidates/{candidates[0].pk}/image", None),
        (f"/faces/{face.pk}/crop.png", None),
        (f"/candidates/{candidates[0].pk}/crop.png", None),
    ]:
        response = web.get(url)
        assert response.status_code == 200, url
        content = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
        assert content and (expected is None or content == expected), url
        assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action__in=["probe.image_viewed", "candidate.image_viewed"]).count() == viewed + 4
    outsider = Client()
    outsider.force_login(people["outsider"])
    assert outsider.get(f"/probes/{probe.pk}/image").status_code == 404

    # Deleting a subject removes its images from the bucket.
    subject = Subject.objects.get(gallery=gallery, external_ref=f"CUST-{ref}")
    victim_keys = [f"media/{image.file.name}" for image in subject.images.all()]
    assert victim_keys and set(victim_keys) <= set(_keys_in(client, bucket, "media/galleries/"))
    run_on_commit(lambda: subject_delete(subject=subject, reason="erasure request", actor=people["investigator"]))
    remaining = set(_keys_in(client, bucket, "media/galleries/"))
    assert not set(victim_keys) & remaining
    assert remaining == {f"media/{image.file.name}" for image in GalleryImage.objects.filter(gallery=gallery)}

    # The orphan sweep, through the storage API: unreferenced objects go, referenced ones stay.
    strays = [
        f"media/probes/{case.pk}/stray/orphan.jpg",
        f"media/galleries/{gallery.pk}/ab/{'ab' * 32}.jpg",
        "media/enrolment-uploads/deadrun/x.jpg",
    ]
    for key in strays:
        client.put_object(Bucket=bucket, Key=key, Body=b"left by a crash")
    before = set(_keys_in(client, bucket))
    assert {orphan.name for orphan in storage_orphans_find(grace_seconds=3600)} == set()  # too young
    found = storage_orphans_find(grace_seconds=0)
    assert sorted(f"media/{orphan.name}" for orphan in found) == sorted(strays)
    assert {orphan.kind for orphan in found} == {"probe_original", "gallery_image", "enrolment_item"}
    report = storage_orphans_sweep(grace_seconds=0)
    assert report.removed and len(report.files) == 3
    assert set(_keys_in(client, bucket)) == before - set(strays)
    assert AuditEvent.objects.filter(action="storage.orphans_removed").exists()


@pytest.mark.django_db
def test_an_uploaded_zip_is_unpacked_into_the_bucket_and_enrolled_from_it(
    s3_media: tuple[Any, str], faces_dir: Path, tmp_path: Path, run_on_commit: Callable[..., Any]
) -> None:
    from search.gallery_admin import enrolment_run_start_from_zip

    client, bucket = s3_media
    folder = tmp_path / "upload" / "custody"
    folder.mkdir(parents=True)
    rows = _celeba_rows(faces_dir, identities=2, each=2)
    for file, _ in rows:
        shutil.copy(faces_dir / "celeba" / "images" / file, folder / Path(file).name)
    # A row whose file the zip does not hold: failed when its worker finds no object for it.
    named = [(Path(file).name, ref) for file, ref in rows] + [("not-in-zip.jpg", "CUST-MISSING")]
    write_subjects_csv(folder / "subjects.csv", named)
    archive = Path(shutil.make_archive(str(tmp_path / "custody"), "zip", tmp_path / "upload"))
    gallery = gallery_create(name="Zip S3", kind="custody")
    with archive.open("rb") as handle:
        run = run_on_commit(
            lambda: enrolment_run_start_from_zip(
                gallery=gallery, upload=handle, filename="custody.zip", size=archive.stat().st_size
            )
        )
    run = EnrolmentRun.objects.get(pk=run.pk)
    assert run.status == EnrolmentRun.Status.FINISHED
    assert run.counts["enrolled"] + run.counts["failed"] == len(rows) + 1 and run.counts["enrolled"] >= 2
    assert EnrolmentItem.objects.get(run=run, subject_ref="CUST-MISSING").message == "file not found"
    assert not _keys_in(client, bucket, "media/enrolment-uploads/")
    assert len(_keys_in(client, bucket, "media/galleries/")) == run.counts["enrolled"]


@pytest.mark.slow
def test_enrolment_by_two_celery_workers_that_share_only_the_bucket(
    faces_dir: Path, tmp_path: Path, bucket: tuple[Any, str], s3_endpoint: str
) -> None:
    url = _redis_url()
    if url is None:
        if os.environ.get("REDIS_URL"):
            pytest.fail("REDIS_URL is set but Redis cannot be reached")
        pytest.skip("no Redis for a worker test")
    client, name = bucket
    rows = _celeba_rows(faces_dir, identities=4, each=2)
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", rows)
    s3_env = {
        "RFR_STORAGE": "s3",
        "RFR_S3_BUCKET": name,
        "RFR_S3_ENDPOINT_URL": s3_endpoint,
        "RFR_S3_REGION": REGION,
        "RFR_S3_ADDRESSING_STYLE": "path",
        **CREDENTIALS,
    }
    with scratch_database() as database_url:
        if database_url is None:
            pytest.skip("workers on several machines share PostgreSQL; SQLite is one machine's file")
        command = World(tmp_path / "command", database_url)
        command.root.mkdir()
        command.env.update(REDIS_URL=url, **s3_env)
        command.run("migrate", "-v0")
        command.run("gallery", "create", "custody", "--kind", "custody")
        workers = []
        for number in range(2):
            # Each worker has a data folder of its own, as on another machine: the bucket is all they share.
            machine = World(tmp_path / f"worker{number}", database_url)
            machine.root.mkdir()
            machine.env.update(REDIS_URL=url, **s3_env)
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "rfr", "worker", "-Q", ALL_QUEUES, "--pool", "solo",
                     "-n", f"s3-{number}@%h", "-l", "warning"],
                    cwd=REPO, env=machine.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        try:
            output = command.run(
                "gallery", "enrol", "custody", "--images", str(faces_dir / "celeba" / "images"),
                "--subjects", str(csv_path), "--batch-size", "2",
            )  # fmt: skip
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        assert "enrolled" in output
        enrolled = command.query("SELECT count(*) FROM search_galleryimage")[0][0]
        assert enrolled >= len(rows) - 2
        names = [row[0] for row in command.query("SELECT file FROM search_galleryimage")]
        assert sorted(f"media/{n}" for n in names) == _keys_in(client, name, "media/galleries/")
        assert not _keys_in(client, name, "media/enrolment-uploads/")  # copies removed once the run finished
        pending = command.query("SELECT count(*) FROM search_enrolmentitem WHERE status = 'pending'")[0][0]
        assert pending == 0
        for number in range(2):  # nothing was written to a worker's own disk
            assert not (tmp_path / f"worker{number}" / "media").exists()
