"""Writes that set up a DEMO workbench for a newcomer (`manage.py demo_setup`): demo users with roles and a
team, a small demo gallery of research images, one demo case, and the active pack's demographic evaluation on
the research data's UTKFace folder (so the accuracy page has figures). Everything is named DEMO, every change is
audited in the transaction that makes it, and running it again changes nothing (users, team, gallery and case
are looked up by name first; enrolment skips images already enrolled).

Passwords are never stored in clear: each is generated at random, set as a hash, and only returned so that
the command can print it once.
"""

from __future__ import annotations

import csv
import importlib.util
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from accounts.models import Team
from accounts.roles import ADMIN, INVESTIGATOR, SUPERVISOR, user_has_role
from accounts.services import (
    team_create,
    team_member_add,
    team_supervisor_add,
    user_create,
    user_password_set,
    user_role_grant,
)
from cases.lifecycle import case_create
from cases.models import Case
from faceengine import decode_image
from faceengine.evaluation.demographics import run_demographics
from rfr.engine import active_engine, image_limits
from search.enrolment import (
    EnrolmentEntry,
    EnrolmentError,
    enrolment_run_create,
    enrolment_run_execute,
    gallery_image_enrol,
)
from search.evaluations import evaluation_run_latest, evaluation_run_record, file_sha256
from search.galleries import gallery_create
from search.models import EnrolmentItem, EnrolmentRun, EvaluationRun, Gallery

DEMO_TEAM_NAME = "DEMO Team A"
DEMO_GALLERY_NAME = "DEMO gallery — research images, not real custody data"
DEMO_CASE_REFERENCE = "DEMO-0001"
DEMO_IDENTITIES_DEFAULT = 40
DEMO_IMAGES_PER_IDENTITY = 2
# Audit detail "by" for events this module writes with no signed-in actor (it runs from the command line).
DEMO_ACTOR_NAME = "demo_setup"
PASSWORD_LENGTH = 16
# Letters and digits only, without look-alikes (0/O, 1/l/I), so a password read off a terminal types cleanly.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")

MEMBER = "member"
TEAM_SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    role: str
    team_role: str | None  # MEMBER, TEAM_SUPERVISOR, or None (not in the demo team)

    @property
    def summary(self) -> str:
        if self.team_role == MEMBER:
            return f"{self.role}, {DEMO_TEAM_NAME}"
        if self.team_role == TEAM_SUPERVISOR:
            return f"{self.role} of {DEMO_TEAM_NAME}"
        return f"{self.role}, /manage/ pages"


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("demo-investigator", "DEMO", "Investigator", INVESTIGATOR, MEMBER),
    DemoUser("demo-investigator2", "DEMO", "Investigator 2", INVESTIGATOR, MEMBER),
    DemoUser("demo-supervisor", "DEMO", "Supervisor", SUPERVISOR, TEAM_SUPERVISOR),
    DemoUser("demo-admin", "DEMO", "Admin", ADMIN, None),
)


def demo_password_generate() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


# -- team and users ------------------------------------------------------------------------------------------
def demo_team_ensure() -> Team:
    return team_create(name=DEMO_TEAM_NAME, created_by=None, by=DEMO_ACTOR_NAME)


def _demo_user_memberships_ensure(*, user: AbstractBaseUser, spec: DemoUser, team: Team) -> None:
    """Grant the role and team place the spec asks for, each only if missing (so a re-run audits nothing)."""
    if not user_has_role(user, spec.role):
        user_role_grant(user=user, role=spec.role, granted_by=None)
    if spec.team_role == MEMBER and not team.members.filter(pk=user.pk).exists():
        team_member_add(team=team, user=user, added_by=None)
    if spec.team_role == TEAM_SUPERVISOR and not team.supervisors.filter(pk=user.pk).exists():
        team_supervisor_add(team=team, user=user, added_by=None)


def demo_users_ensure() -> dict[str, str]:
    """Create the demo users that do not exist yet; returns {username: password} for those just created."""
    team = demo_team_ensure()
    user_model = get_user_model()
    created: dict[str, str] = {}
    for spec in DEMO_USERS:
        with transaction.atomic():
            user: AbstractBaseUser | None = user_model.objects.filter(username=spec.username).first()
            if user is None:
                password = demo_password_generate()
                user = user_create(
                    username=spec.username,
                    password=password,
                    created_by=None,
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    role=spec.role,
                    by=DEMO_ACTOR_NAME,
                )
                created[spec.username] = password
            _demo_user_memberships_ensure(user=user, spec=spec, team=team)
    return created


def demo_passwords_reset() -> dict[str, str]:
    """New random passwords for the demo users that exist; returns {username: new password}."""
    user_model = get_user_model()
    reset: dict[str, str] = {}
    for spec in DEMO_USERS:
        user = user_model.objects.filter(username=spec.username).first()
        if user is None:
            continue
        password = demo_password_generate()
        user_password_set(user=user, password=password, set_by=None, by=DEMO_ACTOR_NAME)
        reset[spec.username] = password
    return reset


# -- gallery ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoGallery:
    gallery: Any  # search.models.Gallery
    source: str  # "celeba" or "insightface"
    created: bool
    try_image: Path | None  # a photo to upload as a probe
    try_hint: str  # what the probe should find


def insightface_images_dir() -> Path | None:
    """The sample photos the insightface package ships, located without importing the package."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return path if path.is_dir() else None


def _celeba_selection(faces_data: Path, identities: int) -> list[tuple[str, list[str], str]]:
    """The first `identities` CelebA identities (numeric order) with a photo to spare: (identity, files to
    enrol, sex). The rest of each identity's photos stay out of the gallery, to be used as probes."""
    by_identity: dict[str, list[str]] = {}
    sex: dict[str, str] = {}
    with open(faces_data / "celeba" / "identities.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(row["file"])
            sex[row["identity"]] = row.get("sex") or ""
    chosen = []
    for identity in sorted(by_identity, key=lambda i: (len(i), i)):
        files = sorted(by_identity[identity])
        if len(files) <= DEMO_IMAGES_PER_IDENTITY:
            continue
        chosen.append((identity, files, sex[identity]))
        if len(chosen) == identities:
            break
    return chosen


def celeba_available(faces_data: Path) -> bool:
    return (faces_data / "celeba" / "identities.csv").is_file() and (faces_data / "celeba" / "images").is_dir()


def _demo_gallery_get_or_create(provenance: str, description: str) -> tuple[Any, bool]:
    gallery = Gallery.objects.filter(name=DEMO_GALLERY_NAME).first()
    if gallery is not None:
        return gallery, False
    gallery = gallery_create(
        name=DEMO_GALLERY_NAME,
        kind=Gallery.Kind.CUSTODY,
        description=description,
        provenance=provenance,
    )
    return gallery, True


def _demo_gallery_celeba(*, faces_data: Path, identities: int, progress: bool) -> DemoGallery:
    images_dir = (faces_data / "celeba" / "images").resolve()
    gallery, created = _demo_gallery_get_or_create(
        provenance=(
            f"CelebA research dataset (in-the-wild photos; non-commercial research use only), the development "
            f"copy in {faces_data}. Loaded by `manage.py demo_setup` for DEMONSTRATION ONLY: these are not "
            "custody images, and nothing found in this gallery may be used as intelligence about anyone."
        ),
        description=(
            f"{identities} CelebA identities, {DEMO_IMAGES_PER_IDENTITY} photos each; their other photos are "
            "left out so that they can be uploaded as probes."
        ),
    )
    selection = _celeba_selection(faces_data, identities)
    runs = EnrolmentRun.objects.filter(gallery=gallery)
    if not runs.filter(status=EnrolmentRun.Status.FINISHED).exists():
        # An interrupted earlier run is resumed (its pending items only) rather than started again.
        run = (
            runs.filter(status__in=[EnrolmentRun.Status.RUNNING, EnrolmentRun.Status.INTERRUPTED])
            .order_by("pk")
            .first()
        )
        if run is None:
            entries = [
                EnrolmentEntry(
                    path=file,
                    subject_ref=f"DEMO-CELEBA-{identity}",
                    attributes={"dataset": "CelebA (demo)", "sex": sex},
                )
                for identity, files, sex in selection
                for file in files[:DEMO_IMAGES_PER_IDENTITY]
            ]
            run = enrolment_run_create(
                gallery=gallery,
                images_dir=images_dir,
                entries=entries,
                source=f"DEMO: CelebA research images ({images_dir}), demonstration only",
            )
        enrolment_run_execute(run=run, in_process=True, progress=progress)
    # A probe: a photo not in the gallery, of an identity whose photos were enrolled.
    enrolled_refs = set(
        EnrolmentItem.objects.filter(run__gallery=gallery, status=EnrolmentItem.Status.ENROLLED).values_list(
            "subject_ref", flat=True
        )
    )
    for identity, files, _ in selection:
        if f"DEMO-CELEBA-{identity}" in enrolled_refs:
            return DemoGallery(
                gallery=gallery,
                source="celeba",
                created=created,
                try_image=images_dir / files[-1],
                try_hint=f"a photo not in the gallery of subject DEMO-CELEBA-{identity}, who is enrolled",
            )
    return DemoGallery(gallery=gallery, source="celeba", created=created, try_image=None, try_hint="")


def _demo_face_crops(image_bytes: bytes) -> list[bytes]:
    """Each face of a group photo cut out with a margin, left to right, as JPEG bytes (deterministic, so a
    re-run produces the same bytes and enrolment recognises them as already enrolled)."""
    image = decode_image(image_bytes, image_limits())
    faces = sorted(active_engine().analyse(image), key=lambda face: face.box[0])
    crops = []
    height, width = image.shape[:2]
    for face in faces:
        x, y, w, h = face.box
        margin = 0.5  # half a face each side: the crop holds the whole head but none of the neighbours' faces
        x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
        x1, y1 = min(width, int(x + w * (1 + margin))), min(height, int(y + h * (1 + margin)))
        ok, encoded = cv2.imencode(".jpg", image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if ok:
            crops.append(encoded.tobytes())
    return crops


def _demo_gallery_insightface(*, images_dir: Path) -> DemoGallery:
    provenance = (
        f"Sample photos shipped in the insightface Python package ({images_dir}: t1.jpg, a group of six, "
        "each face cut out as its own subject, and Tom_Hanks_54745.png). Loaded by `manage.py demo_setup` "
        "for DEMONSTRATION ONLY: these are not custody images, and nothing found in this gallery may be used "
        "as intelligence about anyone."
    )
    gallery, created = _demo_gallery_get_or_create(
        provenance=provenance,
        description="The research face data set was not found, so the demo uses insightface's sample photos.",
    )
    group = images_dir / "t1.jpg"
    wanted: list[tuple[str, bytes, str]] = []
    if group.is_file():
        for number, crop in enumerate(_demo_face_crops(group.read_bytes()), start=1):
            wanted.append((f"DEMO-T1-{number}", crop, f"t1-face-{number}.jpg"))
    single = images_dir / "Tom_Hanks_54745.png"
    if single.is_file():
        wanted.append(("DEMO-TH-1", single.read_bytes(), single.name))
    for subject_ref, data, filename in wanted:
        try:
            gallery_image_enrol(
                gallery=gallery,
                data=data,
                subject_ref=subject_ref,
                original_filename=filename,
                attributes={"dataset": "insightface sample photos (demo)"},
                provenance="DEMO: insightface sample photo, demonstration only",
            )  # None (nothing written) when these bytes are already enrolled
        except EnrolmentError:
            continue  # one unusable crop should not stop the demo; the gallery simply has one fewer subject
    return DemoGallery(
        gallery=gallery,
        source="insightface",
        created=created,
        try_image=group if group.is_file() else None,
        try_hint="a group of six: each face was enrolled, cut out, as DEMO-T1-1 … DEMO-T1-6, left to right",
    )


def demo_gallery_ensure(
    *, faces_data: Path, identities: int = DEMO_IDENTITIES_DEFAULT, progress: bool = False
) -> DemoGallery | None:
    """The demo gallery, enrolled from CelebA in the research data when present, else from insightface's
    sample photos; None when neither exists."""
    if celeba_available(faces_data):
        return _demo_gallery_celeba(faces_data=faces_data, identities=identities, progress=progress)
    images_dir = insightface_images_dir()
    if images_dir is None:
        return None
    return _demo_gallery_insightface(images_dir=images_dir)


# -- accuracy evidence -----------------------------------------------------------------------------------------
# The demographic evaluations stored for the active pack, so the accuracy page has figures for a newcomer.
DEMO_EVALUATIONS: tuple[tuple[str, float | None], ...] = (
    ("DEMO: UTKFace development set, adults 18+ (research data)", 18.0),
    ("DEMO: UTKFace development set, all ages (research data)", None),
)


def demo_evaluations_ensure(
    *, faces_data: Path, progress: Callable[[int, int], None] | None = None
) -> list[tuple[EvaluationRun, bool]]:
    """`evaluate demographics --store` on the research data's UTKFace folder (adults, then all ages), each stored
    once per pack and labels file; [] where the folder is absent. Every image is encoded once for both runs."""
    labels, images = faces_data / "utkface" / "labels.csv", faces_data / "utkface" / "images"
    if not labels.is_file() or not images.is_dir():
        return []
    engine = active_engine()
    sha256 = file_sha256(labels)
    cache: dict[str, Any] = {}
    runs: list[tuple[EvaluationRun, bool]] = []
    for name, min_age in DEMO_EVALUATIONS:
        existing = evaluation_run_latest(
            pack_key=engine.pack.key, kind=EvaluationRun.Kind.DEMOGRAPHICS, dataset_name=name
        )
        if existing is not None and existing.labels_sha256 == sha256:
            runs.append((existing, False))
            continue
        figures, curves = run_demographics(
            engine,
            labels_csv=labels,
            images_dir=images,
            operating_threshold=settings.RFR_DEFAULT_THRESHOLD,
            min_age=min_age,
            limits=image_limits(),
            progress=progress,
            cache=cache,
        )
        run = evaluation_run_record(
            pack_key=engine.pack.key,
            kind=EvaluationRun.Kind.DEMOGRAPHICS,
            dataset_name=name,
            figures=figures,
            curves=curves,
            labels_sha256=sha256,
            source=f"{labels} (images {images})",
            run_by_label=DEMO_ACTOR_NAME,
        )
        runs.append((run, True))
    return runs


# -- case ------------------------------------------------------------------------------------------------------
def demo_case_ensure() -> tuple[Case, bool]:
    owner = get_user_model().objects.get(username=DEMO_USERS[0].username)
    case = Case.objects.filter(reference=DEMO_CASE_REFERENCE, owner=owner).first()
    if case is not None:
        return case, False
    case = case_create(
        owner=owner,
        reference=DEMO_CASE_REFERENCE,
        title="DEMO case — try a search against the demo gallery",
        purpose=Case.Purpose.OTHER,
        offence_category="Demonstration",
        legal_basis="Demonstration only — no real investigation",
        team=Team.objects.get(name=DEMO_TEAM_NAME),
    )
    return case, True
