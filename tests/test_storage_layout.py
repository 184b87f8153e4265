"""Where stored files live: the STORAGES entries on local disk by default, every one of them in the bucket with
RFR_STORAGE=s3 (rfr/objectstore.py), and bulk-enrolment runs recorded before items were copied into storage.

The object store itself is exercised in tests/test_storage_s3.py; here the switch's mapping, the settings read
from the environment, and the local default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage, storages

from rfr.objectstore import S3_BACKEND, local_storages, storages_switch
from rfr.storage import named_storage
from search import enrolment
from search.galleries import gallery_create
from search.models import EnrolmentItem, EnrolmentRun, GalleryImage
from tests.factories import celeba_identities

REPO = Path(__file__).resolve().parent.parent


def test_the_default_is_local_folders_that_follow_the_media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    for alias in ("default", "gallery", "enrolment"):
        storage = storages[alias]
        assert isinstance(storage, FileSystemStorage)
        assert Path(storage.location) == tmp_path / "media"
    assert named_storage("gallery")._allow_overwrite  # type: ignore[attr-defined]  # content-named: rewritten
    assert not storages["default"]._allow_overwrite  # type: ignore[attr-defined]  # a probe's file is never overwritten
    assert Path(GalleryImage._meta.get_field("file").storage.location) == tmp_path / "media"  # type: ignore[attr-defined]


def test_the_s3_switch_moves_every_entry_but_static_files(tmp_path: Path) -> None:
    layout = local_storages()
    # Entries other apps add: one under the data folder, one elsewhere.
    layout["index"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "index"},
    }
    layout["exports"] = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": "/srv/x"}}
    switched = storages_switch(
        layout, backend="s3", data_dir=tmp_path, bucket="rfr", endpoint_url="http://store:9000", prefix="force-a"
    )
    assert switched["staticfiles"] == layout["staticfiles"]
    for alias in ("default", "gallery", "enrolment", "index", "exports"):
        assert switched[alias]["BACKEND"] == S3_BACKEND
        options = switched[alias]["OPTIONS"]
        assert options["bucket_name"] == "rfr" and options["endpoint_url"] == "http://store:9000"
        assert options["default_acl"] is None  # private objects: images go through the app only
    locations = {alias: switched[alias]["OPTIONS"]["location"] for alias in switched if alias != "staticfiles"}
    assert locations == {
        "default": "force-a/media",
        "gallery": "force-a/media",
        "enrolment": "force-a/media",
        "index": "force-a/index",
        "exports": "force-a/exports",
    }
    overwrite = {alias: switched[alias]["OPTIONS"]["file_overwrite"] for alias in locations}
    assert overwrite == {"default": False, "gallery": True, "enrolment": False, "index": False, "exports": False}
    assert storages_switch(layout, backend="local", data_dir=tmp_path) is layout
    with pytest.raises(ValueError, match="RFR_S3_BUCKET"):
        storages_switch(layout, backend="s3", data_dir=tmp_path)
    with pytest.raises(ValueError, match="RFR_STORAGE"):
        storages_switch(layout, backend="nfs", data_dir=tmp_path)


def _settings_storages(**env: str) -> Any:
    code = "import json; from django.conf import settings; print(json.dumps(settings.STORAGES, default=str))"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "rfr.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result


def test_the_environment_switches_every_entry_to_the_bucket() -> None:
    result = _settings_storages(
        RFR_STORAGE="s3", RFR_S3_BUCKET="evidence", RFR_S3_ENDPOINT_URL="http://objectstore:9000",
        RFR_S3_ADDRESSING_STYLE="path",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    configured = json.loads(result.stdout.strip().splitlines()[-1])
    media = [entry for alias, entry in configured.items() if alias != "staticfiles"]
    assert {"default", "gallery", "enrolment"} <= set(configured)
    assert all(entry["BACKEND"] == S3_BACKEND and entry["OPTIONS"]["bucket_name"] == "evidence" for entry in media)
    assert all(entry["OPTIONS"]["addressing_style"] == "path" for entry in media)
    refused = _settings_storages(RFR_STORAGE="s3")
    assert refused.returncode != 0 and "RFR_S3_BUCKET" in refused.stderr


@pytest.mark.django_db
def test_a_run_recorded_with_absolute_paths_copies_them_in_when_resumed(
    gallery_env: Path, faces_dir: Path, engine: Any
) -> None:
    # As migration 0008 leaves a run recorded before items were copied into storage: folder "/", absolute paths.
    gallery = gallery_create(name="Upgraded", kind="custody")
    ref, files = next(iter(celeba_identities(faces_dir).items()))
    run = EnrolmentRun.objects.create(gallery=gallery, actor_name="command line", source="before", import_folder="/")
    EnrolmentItem.objects.bulk_create(
        EnrolmentItem(run=run, path=str(faces_dir / "celeba" / "images" / file), subject_ref=f"CUST-{ref}")
        for file in files[:2]
    )
    run = enrolment.enrolment_run_execute(run=run, in_process=True, progress=False)
    assert run.counts["pending"] == 0 and run.counts["enrolled"] >= 1
    assert GalleryImage.objects.filter(gallery=gallery).count() == run.counts["enrolled"]
    # The run's copies are gone with the run finished; the gallery's images stay.
    assert not [p for p in (gallery_env / "media" / "enrolment-uploads").rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_copies_of_items_go_with_a_removed_subject_and_the_sweep_keeps_only_pending_ones(
    gallery_env: Path, faces_dir: Path, engine: Any, run_on_commit: Any, tmp_path: Path
) -> None:
    from cases.housekeeping import storage_orphans_find
    from search.enrolment_storage import enrolment_item_name
    from search.galleries import subject_delete

    gallery = gallery_create(name="Erasure of copies", kind="custody")
    (ref, files), (other_ref, other_files) = list(celeba_identities(faces_dir).items())[:2]
    entries = [enrolment.EnrolmentEntry(path=f, subject_ref=f"CUST-{ref}", attributes={}) for f in files[:3]]
    entries += [enrolment.EnrolmentEntry(path=other_files[0], subject_ref=f"CUST-{other_ref}", attributes={})]
    run = enrolment.enrolment_run_create(
        gallery=gallery, images_dir=faces_dir / "celeba" / "images", entries=entries, source="copies"
    )
    enrolment.enrolment_run_import(run=run)
    media = gallery_env / "media"
    items = list(run.items.order_by("pk"))
    copies = {item.pk: media / enrolment_item_name(run, item.path) for item in items}
    assert all(path.is_file() for path in copies.values())
    # The pending items' copies are never orphans, however old.
    assert not [o for o in storage_orphans_find(grace_seconds=0) if o.kind == "enrolment_item"]

    enrolment.enrolment_items_process(item_ids=[items[0].pk], engine=engine)  # the subject exists now
    subject = gallery.subjects.get(external_ref=f"CUST-{ref}")
    run_on_commit(lambda: subject_delete(subject=subject, reason="erasure request"))
    # Every copy of the removed subject's images is gone at once; the other subject's pending copy stays.
    assert [pk for pk, path in copies.items() if path.exists()] == [items[3].pk]
    assert EnrolmentItem.objects.get(pk=items[3].pk).status == EnrolmentItem.Status.PENDING

    # Once the run is over (the item done), its copy is no longer needed: the sweep takes what the finish left.
    EnrolmentItem.objects.filter(pk=items[3].pk).update(status=EnrolmentItem.Status.FAILED)
    orphans = [o for o in storage_orphans_find(grace_seconds=0) if o.kind == "enrolment_item"]
    assert [o.name for o in orphans] == [enrolment_item_name(run, items[3].path)]
