"""Fixtures shared by the workbench tests: people with roles, a case, a small gallery, eager tasks."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from cases.models import Case, Team
from cases.services import case_create

PASSWORD = "a-long-test-password-1234"


@pytest.fixture
def eager_celery() -> Iterator[None]:
    from rfr.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any, eager_celery: None) -> Callable[..., Any]:
    """Run `call()` and then the tasks it queued on commit, as a worker would."""

    def run(call: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


def _user(username: str, *groups: str) -> Any:
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def people() -> dict[str, Any]:
    investigator = _user("ivy", "investigator")
    colleague = _user("cole", "investigator")
    supervisor = _user("sam", "supervisor")
    outsider = _user("otto", "investigator")
    team = Team.objects.create(name="Major crime")
    team.members.add(investigator, colleague)
    team.supervisors.add(supervisor)
    return {
        "investigator": investigator,
        "colleague": colleague,
        "supervisor": supervisor,
        "outsider": outsider,
    }


@pytest.fixture
def case(people: dict[str, Any]) -> Case:
    from cases.services import case_member_add

    case = case_create(
        owner=people["investigator"],
        reference="OP-1234",
        title="Street robbery",
        purpose=Case.Purpose.SUSPECT,
        offence_category="Robbery",
        legal_basis="Prevention and detection of crime (DPA 2018 s.35).",
    )
    case_member_add(case=case, user=people["colleague"], added_by=people["investigator"])
    return case


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _celeba_identities(faces_dir: Path) -> dict[str, list[Path]]:
    by_identity: dict[str, list[Path]] = {}
    with (faces_dir / "celeba" / "identities.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(faces_dir / "celeba" / "images" / row["file"])
    return {identity: sorted(paths) for identity, paths in sorted(by_identity.items(), key=lambda kv: int(kv[0]))}


@pytest.fixture
def gallery(faces_dir: Path, engine: Any) -> tuple[Any, dict[str, list[Path]]]:
    """Six CelebA identities with two images each enrolled; for each, a further photo is kept back as a probe.

    Returns the gallery and, per identity, [enrolled, enrolled, probe]. Photos the gallery refuses (several
    faces, none dominant) are passed over, as an enrolment officer would.
    """
    from search.services import EnrolmentError, gallery_create, gallery_image_enrol

    gallery = gallery_create(name="Custody test", kind="custody", provenance="CelebA development subset")
    chosen: dict[str, list[Path]] = {}
    for identity, paths in _celeba_identities(faces_dir).items():
        if len(chosen) == 6:
            break
        if len(paths) < 4:
            continue
        enrolled: list[Path] = []
        for path in paths[:-1]:
            if len(enrolled) == 2:
                break
            try:
                gallery_image_enrol(
                    gallery=gallery,
                    data=path.read_bytes(),
                    subject_ref=f"CUST-{identity}",
                    original_filename=path.name,
                    engine=engine,
                )
            except EnrolmentError:
                continue
            enrolled.append(path)
        if len(enrolled) == 2:
            chosen[identity] = [*enrolled, paths[-1]]
    assert len(chosen) == 6
    return gallery, chosen


def upload(client: APIClient, case: Case, data: bytes, name: str = "probe.jpg", **fields: Any) -> Any:
    payload = {
        "image": _file(data, name),
        "source": "cctv",
        "description": "Still from camera 3",
        "captured_at": "2026-10-01T21:14:00Z",
        "lawfully_held": "true",
        **fields,
    }
    return client.post(f"/api/cases/{case.pk}/probes/", payload, format="multipart")


def _file(data: bytes, name: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def _png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def workbench_objects_create(world: Any) -> None:
    """A processed probe with one face, a finished search and one candidate under `world.case`, made directly
    (no face engine) so the permission matrix can reach every workbench URL quickly. Idempotent per world."""
    import hashlib

    from django.core.files.base import ContentFile

    from cases.models import Candidate, Probe, ProbeFace, Search
    from search.models import Gallery, GalleryImage, Subject, Template

    if "probe" in world.extra:
        return
    image = np.full((120, 160, 3), 128, np.uint8)
    cv2.circle(image, (80, 60), 30, (40, 90, 200), -1)
    data = _png(image)
    digest = hashlib.sha256(data).hexdigest()
    owner = world.case.owner
    probe = Probe(
        case=world.case,
        uploaded_by=owner,
        source="cctv",
        lawfully_held=True,
        original_name="probe.png",
        image_format="PNG",
        size_bytes=len(data),
        sha256=digest,
        width=160,
        height=120,
        status=Probe.Status.DONE,
        progress=100,
        pack_key="test-pack@1",
    )
    probe.original.save("original", ContentFile(data), save=False)
    probe.save()
    landmarks = [[68.0, 50.0], [92.0, 50.0], [80.0, 62.0], [70.0, 74.0], [90.0, 74.0]]
    face = ProbeFace(
        probe=probe,
        index=1,
        box=[50.0, 30.0, 60.0, 60.0],
        landmarks=landmarks,
        detector_score=0.9,
        quality={"warnings": []},
        template=np.ones(128, "<f4").tobytes(),
        pack_key="test-pack@1",
    )
    face.aligned_crop.save("crop.png", ContentFile(_png(image[:112, :112])), save=False)
    face.save()
    gallery = Gallery.objects.create(name=f"Matrix gallery {world.case.pk}", kind="custody")
    subject = Subject.objects.create(gallery=gallery, external_ref="CUST-1")
    gallery_image = GalleryImage(gallery=gallery, subject=subject, sha256=digest, original_filename="g.png")
    gallery_image.file.save("g.png", ContentFile(data), save=False)
    gallery_image.save()
    template = Template.objects.create(
        gallery=gallery,
        subject=subject,
        image=gallery_image,
        pack_key="test-pack@1",
        box=[50.0, 30.0, 60.0, 60.0],
        landmarks=landmarks,
        embedding=np.ones(128, "<f4").tobytes(),
    )
    search = Search.objects.create(
        case=world.case,
        face=face,
        requested_by=owner,
        galleries=[{"id": gallery.pk, "name": gallery.name}],
        threshold=0.36,
        threshold_source=Search.ThresholdSource.SETTING,
        justification="Matrix",
        pack_key="test-pack@1",
        status=Search.Status.DONE,
        progress=100,
    )
    candidate = Candidate.objects.create(
        search=search,
        rank=1,
        score=0.9,
        gallery_id=gallery.pk,
        gallery_name=gallery.name,
        subject_id=subject.pk,
        subject_ref="CUST-1",
        template_id=template.pk,
        image_id=gallery_image.pk,
    )
    world.extra.update(probe=probe, face=face, search=search, candidate=candidate, gallery=gallery)
