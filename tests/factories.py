"""The test suite's one set of factories and fixtures (registered for every test module by conftest.py).

People and cases
    make_user, build_case_world (six roles around one case, for permission and audit tests), the `people` and
    `case` fixtures (an investigator, a colleague, a supervisor and an outsider around one case), client_for.
Workbench objects
    upload (a probe through the API), workbench_objects_create (a probe, face, search and candidate made
    directly, without the face engine, so the permission matrix reaches every URL quickly).
Galleries
    gallery_env (media and index in a fresh folder), the `gallery` fixture (six CelebA identities enrolled),
    celeba_identities, write_subjects_csv.
Tasks
    eager_celery, run_on_commit.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import Team
from accounts.roles import ADMIN, INVESTIGATOR, SUPERVISOR
from accounts.services import team_member_add, team_supervisor_add, user_role_grant
from cases.lifecycle import case_create, case_member_add
from cases.models import Candidate, Case, Probe, ProbeFace, Search
from faceengine.evaluation import natural_key
from rfr.celery import app as celery_app
from search.enrolment import EnrolmentError, gallery_image_enrol
from search.galleries import gallery_create
from search.index.live import get_index
from search.models import Gallery, GalleryImage, Subject, Template

PASSWORD = "correct horse battery staple 42"
ROLES = ("owner", "member", "supervisor", "other_sup", "admin", "outsider")


# --- People and cases ------------------------------------------------------------------------------------------


def make_user(username: str, *, role: str | None = INVESTIGATOR, superuser: bool = False) -> Any:
    User = get_user_model()
    if superuser:
        user = User.objects.create_superuser(username=username, password=PASSWORD, email=f"{username}@example.org")
    else:
        user = User.objects.create_user(username=username, password=PASSWORD)
    if role is not None:
        user_role_grant(user=user, role=role, granted_by=None)
    return user


@dataclass
class CaseWorld:
    users: dict[str, Any]
    team_a: Team
    team_b: Team
    case: Case
    extra: dict[str, Any] = field(default_factory=dict)  # objects under the case, for rows that need them


def build_case_world() -> CaseWorld:
    users = {
        "owner": make_user("owner"),
        "member": make_user("member"),
        "supervisor": make_user("supervisor", role=SUPERVISOR),
        "other_sup": make_user("other_sup", role=SUPERVISOR),
        "admin": make_user("admin", role=ADMIN, superuser=True),
        "outsider": make_user("outsider"),
    }
    team_a = Team.objects.create(name="Team A")
    team_b = Team.objects.create(name="Team B")
    team_member_add(team=team_a, user=users["owner"], added_by=users["admin"])
    team_member_add(team=team_a, user=users["outsider"], added_by=users["admin"])
    team_member_add(team=team_b, user=users["member"], added_by=users["admin"])
    team_supervisor_add(team=team_a, user=users["supervisor"], added_by=users["admin"])
    team_supervisor_add(team=team_b, user=users["other_sup"], added_by=users["admin"])
    case = case_create(
        owner=users["owner"],
        reference="OP-REDWOOD/1",
        title="Redwood street robbery",
        purpose=Case.Purpose.SUSPECT,
        offence_category="Robbery",
        legal_basis="Prevention and detection of crime; authorised by DI Example.",
        team=team_a,
    )
    case_member_add(case=case, user=users["member"], added_by=users["owner"])
    return CaseWorld(users=users, team_a=team_a, team_b=team_b, case=case)


def _user(username: str, *groups: str) -> Any:
    """A user put straight into groups, with no audit trail of the set-up (for workbench tests)."""
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


# --- Workbench objects -------------------------------------------------------------------------------------


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
    return SimpleUploadedFile(name, data)


def _png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def workbench_objects_create(world: Any) -> None:
    """A processed probe with one face, a finished search and one candidate under `world.case`, made directly
    (no face engine) so the permission matrix can reach every workbench URL quickly. Idempotent per world."""
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


# --- Galleries -------------------------------------------------------------------------------------------


@pytest.fixture
def gallery_env(settings, tmp_path: Path):
    """Media and index under a fresh folder, tasks in-process, and no index left over from another test."""
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES, "index": index_storage_at(tmp_path / "index")}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Celery reads its settings once: the tasks services queue (the index snapshot after an erasure) run here.
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    get_index().clear()
    yield tmp_path
    get_index().clear()
    celery_app.conf.task_always_eager = previous


def index_storage_at(folder: Path) -> dict[str, Any]:
    """A STORAGES entry for index snapshots in a folder of the test's own."""
    return {"BACKEND": "search.index.store.SnapshotFileStorage", "OPTIONS": {"location": str(folder)}}


def celeba_identities(faces_dir: Path) -> dict[str, list[str]]:
    """CelebA identity → its files (relative to celeba/images), both in natural order."""
    by_identity: dict[str, list[str]] = defaultdict(list)
    with open(faces_dir / "celeba" / "identities.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity[row["identity"]].append(row["file"])
    return {
        identity: sorted(files, key=natural_key)
        for identity, files in sorted(by_identity.items(), key=lambda kv: natural_key(kv[0]))
    }


def write_subjects_csv(path: Path, rows: list[tuple[str, str]], column: str = "subject_ref") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", column, "note"])
        for file, ref in rows:
            writer.writerow([file, ref, f"row for {ref}"])
    return path


@pytest.fixture
def gallery(faces_dir: Path, engine: Any) -> tuple[Any, dict[str, list[Path]]]:
    """Six CelebA identities with two images each enrolled; for each, a further photo is kept back as a probe.

    Returns the gallery and, per identity, [enrolled, enrolled, probe]. Photos the gallery refuses (several
    faces, none dominant) are passed over, as an enrolment officer would.
    """
    gallery = gallery_create(name="Custody test", kind="custody", provenance="CelebA development subset")
    chosen: dict[str, list[Path]] = {}
    images = faces_dir / "celeba" / "images"
    for identity, files in celeba_identities(faces_dir).items():
        paths = [images / file for file in files]
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


# --- Tasks ----------------------------------------------------------------------------------------------


@pytest.fixture
def eager_celery() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any, eager_celery: None) -> Callable[..., Any]:
    """Run `call()` and then the tasks it queued on commit, as a worker would."""

    def run(call: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run
