"""Galleries: bulk enrolment, search at rank 1, deletion with immediate effect, retention purges."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from faceengine import decode_image_file
from rfr.engine import active_engine
from rfr.errors import InvalidInput, NotFound
from search import enrolment, galleries
from search.execution import search_galleries
from search.index.changes import index_changes_record
from search.models import EnrolmentItem, Gallery, GalleryImage, Subject, Template, gallery_removal_permitted
from tests.factories import celeba_identities, write_subjects_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]

ENROLLED_IDENTITIES = 30


def _probe_template(path: Path) -> np.ndarray:
    from faceengine.engine import primary_face_index

    engine = active_engine()
    image = decode_image_file(path)
    faces = engine.analyse(image)
    index = primary_face_index([f.detection for f in faces], image.shape)
    assert index is not None, f"no face in probe {path}"
    return faces[index].template


def _enrol(gallery: Gallery, images_dir: Path, csv_path: Path) -> dict[str, int]:
    entries = enrolment.enrolment_entries_read(images_dir=images_dir, subjects_csv=csv_path)
    run = enrolment.enrolment_run_create(gallery=gallery, images_dir=images_dir, entries=entries, source="test")
    return enrolment.enrolment_run_execute(run=run, in_process=True, progress=False).counts


def _create(name: str = "custody test", **kwargs: Any) -> Gallery:
    return galleries.gallery_create(name=name, kind=Gallery.Kind.CUSTODY, provenance="test fixture", **kwargs)


def test_enrolled_identity_found_at_rank_one(gallery_env: Path, faces_dir: Path, tmp_path: Path) -> None:
    identities = dict(list(celeba_identities(faces_dir).items())[:ENROLLED_IDENTITIES])
    images_dir = faces_dir / "celeba" / "images"
    csv_path = write_subjects_csv(tmp_path / "subjects.csv", [(files[0], ref) for ref, files in identities.items()])
    gallery = _create()
    counts = _enrol(gallery, images_dir, csv_path)
    assert counts["enrolled"] + counts["failed"] == ENROLLED_IDENTITIES
    assert counts["enrolled"] >= ENROLLED_IDENTITIES - 3
    enrolled_refs = set(Subject.objects.filter(gallery=gallery).values_list("external_ref", flat=True))
    assert Subject.objects.get(gallery=gallery, external_ref=next(iter(enrolled_refs))).attributes["note"]

    hits_at_one = searched = 0
    pack_key = active_engine().pack.key
    for ref, files in identities.items():
        if ref not in enrolled_refs or len(files) < 2:
            continue
        hits = search_galleries(
            template=_probe_template(images_dir / files[1]),
            pack_key=pack_key,
            gallery_ids=[gallery.pk],
            top_k=5,
        )
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        searched += 1
        hits_at_one += hits[0].subject_ref == ref
    rate = hits_at_one / searched
    print(f"rank-1 on {searched} held-back CelebA probes against {len(enrolled_refs)} subjects: {rate:.1%}")
    assert searched >= 20
    assert rate >= 0.8

    # The run is audited with its counts, and running it again enrols nothing twice.
    event = AuditEvent.objects.filter(action="gallery.enrol").last()
    assert event is not None and event.detail["enrolled"] == counts["enrolled"]
    again = _enrol(gallery, images_dir, csv_path)
    assert again["enrolled"] == 0 and again["skipped"] == counts["enrolled"]
    assert GalleryImage.objects.filter(gallery=gallery).count() == counts["enrolled"]


def test_a_csv_row_naming_a_file_outside_the_images_folder_is_never_read(
    gallery_env: Path, faces_dir: Path, tmp_path: Path
) -> None:
    images_dir = tmp_path / "incoming"
    images_dir.mkdir()
    identities = list(celeba_identities(faces_dir).items())
    (_, inside_files), (_, outside_files) = identities[0], identities[1]
    shutil.copy(faces_dir / "celeba" / "images" / inside_files[0], images_dir / "good.jpg")
    # A real, enrollable face, but outside the folder the enrolment was pointed at.
    shutil.copy(faces_dir / "celeba" / "images" / outside_files[0], tmp_path / "elsewhere.jpg")
    csv_path = write_subjects_csv(
        tmp_path / "s.csv",
        [("good.jpg", "IN-1"), ("../elsewhere.jpg", "OUT-1"), ("sub/../../elsewhere.jpg", "OUT-2")],
    )
    gallery = _create()
    counts = _enrol(gallery, images_dir, csv_path)
    assert counts == {"pending": 0, "enrolled": 1, "skipped": 0, "failed": 2}
    refused = EnrolmentItem.objects.filter(status="failed")
    assert set(refused.values_list("subject_ref", flat=True)) == {"OUT-1", "OUT-2"}
    assert set(refused.values_list("message", flat=True)) == {"path is outside the images folder"}
    assert list(gallery.subjects.values_list("external_ref", flat=True)) == ["IN-1"]


def test_problem_images_reported_not_enrolled(
    gallery_env: Path, faces_dir: Path, insightface_images: Path, tmp_path: Path
) -> None:
    images_dir = tmp_path / "incoming"
    images_dir.mkdir()
    shutil.copy(insightface_images / "t1.jpg", images_dir / "group.jpg")
    (images_dir / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    np_noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    import cv2

    cv2.imwrite(str(images_dir / "noface.png"), np_noise)
    good = celeba_identities(faces_dir)
    _, first_files = next(iter(good.items()))
    shutil.copy(faces_dir / "celeba" / "images" / first_files[0], images_dir / "good.jpg")
    csv_path = write_subjects_csv(
        tmp_path / "s.csv",
        [
            ("group.jpg", "A1"),
            ("corrupt.jpg", "A2"),
            ("noface.png", "A3"),
            ("missing.jpg", "A4"),
            ("good.jpg", "A5"),
        ],
    )
    gallery = _create()
    counts = _enrol(gallery, images_dir, csv_path)
    assert counts == {"pending": 0, "enrolled": 1, "skipped": 0, "failed": 4}
    messages = dict(EnrolmentItem.objects.filter(status="failed").values_list("path", "message"))
    by_name = {Path(path).name: message for path, message in messages.items()}
    assert "several faces" in by_name["group.jpg"]
    assert by_name["noface.png"] == "no face found"
    assert by_name["missing.jpg"] == "file not found"
    assert by_name["corrupt.jpg"]
    assert list(Subject.objects.values_list("external_ref", flat=True)) == ["A5"]


def test_deleted_subject_never_appears_again(gallery_env: Path, faces_dir: Path, tmp_path: Path) -> None:
    identities = dict(list(celeba_identities(faces_dir).items())[:4])
    images_dir = faces_dir / "celeba" / "images"
    rows = [(file, ref) for ref, files in identities.items() for file in files[:2]]
    gallery = _create()
    _enrol(gallery, images_dir, write_subjects_csv(tmp_path / "s.csv", rows))
    pack_key = active_engine().pack.key
    victim_ref, victim_files = next(iter(identities.items()))
    victim = Subject.objects.get(gallery=gallery, external_ref=victim_ref)
    victim_paths = [Path(image.file.path) for image in victim.images.all()]
    assert victim_paths and all(path.is_file() for path in victim_paths)
    probe = _probe_template(images_dir / victim_files[-1])
    before = search_galleries(template=probe, pack_key=pack_key, gallery_ids=[gallery.pk])
    assert any(hit.subject_id == victim.pk for hit in before)

    detail = galleries.subject_delete(subject=victim, reason="acquitted: record to be deleted")
    after = search_galleries(template=probe, pack_key=pack_key, gallery_ids=[gallery.pk])
    assert after and all(hit.subject_id != victim.pk for hit in after)
    assert not any(path.exists() for path in victim_paths)
    assert not Template.objects.filter(subject_id=victim.pk).exists()
    event = AuditEvent.objects.get(action="gallery.subject_delete")
    assert event.detail["reason"] == "acquitted: record to be deleted"
    assert (
        event.detail["external_ref"] == victim_ref and event.detail["templates_deleted"] == detail["templates_deleted"]
    )
    assert not {"embedding", "template", "image"} & set(event.detail)

    # A template removed behind the index's back (no change logged) is still never returned.
    other = after[0]
    with gallery_removal_permitted():  # the models refuse a delete outside the services otherwise
        Template.objects.filter(pk=other.template_id).delete()
    again = search_galleries(template=probe, pack_key=pack_key, gallery_ids=[gallery.pk])
    assert other.template_id not in {hit.template_id for hit in again}

    with pytest.raises(InvalidInput, match="reason"):
        galleries.subject_delete(subject=Subject.objects.filter(gallery=gallery).earliest("pk"), reason="  ")


def test_remove_subject_command_and_retention_purge(gallery_env: Path, faces_dir: Path, tmp_path: Path) -> None:
    from datetime import timedelta

    from django.utils import timezone

    identities = dict(list(celeba_identities(faces_dir).items())[:3])
    images_dir = faces_dir / "celeba" / "images"
    gallery = _create(retention_days=30)
    rows = [(files[0], ref) for ref, files in identities.items()]
    _enrol(gallery, images_dir, write_subjects_csv(tmp_path / "s.csv", rows))
    refs = list(identities)
    call_command("gallery", "remove-subject", gallery.name, refs[0], "--reason", "data subject request")
    assert not Subject.objects.filter(external_ref=refs[0]).exists()

    old = GalleryImage.objects.get(subject__external_ref=refs[1])
    old.captured_at = (timezone.now() - timedelta(days=31)).date()
    old.save(update_fields=["captured_at"])
    old_path = Path(old.file.path)
    assert galleries.gallery_purge_expired() == {gallery.name: 1}
    assert not old_path.exists()
    assert list(Subject.objects.values_list("external_ref", flat=True)) == [refs[2]]
    event = AuditEvent.objects.get(action="gallery.purge")
    assert event.detail["subjects_deleted"] == 1 and "retention" in event.detail["reason"]
    assert galleries.gallery_purge_expired() == {}


def test_search_arguments_ties_and_pack_isolation(gallery_env: Path) -> None:
    gallery = _create()
    subject = Subject.objects.create(gallery=gallery, external_ref="S1")
    vector = np.zeros(128, np.float32)
    vector[0] = 1.0
    template_ids = []
    for number, pack_key in enumerate(["pack-a", "pack-a", "pack-a", "pack-b"]):
        image = GalleryImage.objects.create(gallery=gallery, subject=subject, sha256=f"{number:064d}", file="x.jpg")
        template = Template.objects.create(
            gallery=gallery,
            subject=subject,
            image=image,
            pack_key=pack_key,
            box=[0, 0, 1, 1],
            landmarks=[],
            embedding=vector.tobytes(),
        )
        index_changes_record(gallery_id=gallery.pk, pack_key=pack_key, changes=[(template.pk, "add")])
        template_ids.append(template.pk)
    hits = search_galleries(template=vector, pack_key="pack-a", gallery_ids=[gallery.pk], top_k=10)
    assert [h.template_id for h in hits] == template_ids[:3]  # equal scores: template id ascending
    assert {h.pack_key for h in hits} == {"pack-a"}
    assert search_galleries(template=vector, pack_key="pack-a", gallery_ids=[gallery.pk], threshold=1.01) == []
    with pytest.raises(InvalidInput, match="500"):
        search_galleries(template=vector, pack_key="pack-a", gallery_ids=[gallery.pk], top_k=501)
    with pytest.raises(NotFound, match="Unknown gallery"):
        search_galleries(template=vector, pack_key="pack-a", gallery_ids=[gallery.pk + 999])
