"""`manage.py demo_setup`: demo users, team, gallery and case; idempotent; passwords shown once, and work."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Team
from accounts.roles import ADMIN, INVESTIGATOR, SUPERVISOR, user_has_role
from audit.models import AuditEvent
from audit.verify import audit_chain_verify
from cases.demo import DEMO_CASE_REFERENCE, DEMO_GALLERY_NAME, DEMO_TEAM_NAME, DEMO_USERS
from cases.models import Case
from faceengine import decode_image_file
from faceengine.engine import primary_face_index
from rfr.engine import active_engine
from search.execution import search_galleries
from search.models import EnrolmentRun, Gallery, GalleryImage, Subject, Template

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
IDENTITIES = 5
PASSWORD_ROW = re.compile(r"^\| (demo-[a-z0-9-]+)\s+([A-Za-z0-9]{16})\s", re.MULTILINE)
UPLOAD_LINE = re.compile(r"Upload (\S+)")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _demo_setup(*args: str) -> str:
    out = io.StringIO()
    # The demographic evaluation (2,000 UTKFace images) has its own test in test_evaluations.py.
    call_command("demo_setup", *args, "--no-evaluation", "--verbosity", "0", stdout=out)
    return out.getvalue()


def _passwords(output: str) -> dict[str, str]:
    return dict(PASSWORD_ROW.findall(output))


def _login(username: str, password: str) -> tuple[Client, int]:
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response.status_code


def _counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "teams": Team.objects.count(),
        "galleries": Gallery.objects.count(),
        "subjects": Subject.objects.count(),
        "images": GalleryImage.objects.count(),
        "templates": Template.objects.count(),
        "runs": EnrolmentRun.objects.count(),
        "cases": Case.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_demo_setup_from_research_data_twice(gallery_env: Path, faces_dir: Path) -> None:
    output = _demo_setup("--demo-identities", str(IDENTITIES), "--faces-data", str(faces_dir))

    passwords = _passwords(output)
    assert set(passwords) == {spec.username for spec in DEMO_USERS}
    assert len(set(passwords.values())) == len(DEMO_USERS)  # each generated on its own
    users = {u.username: u for u in get_user_model().objects.filter(username__in=passwords)}
    for spec in DEMO_USERS:
        user = users[spec.username]
        assert "DEMO" in f"{user.first_name} {user.last_name}"
        assert user_has_role(user, spec.role)
        assert not user.check_password("") and passwords[spec.username] not in user.password  # stored hashed
    team = Team.objects.get(name=DEMO_TEAM_NAME)
    assert set(team.members.values_list("username", flat=True)) == {"demo-investigator", "demo-investigator2"}
    assert list(team.supervisors.values_list("username", flat=True)) == ["demo-supervisor"]
    assert user_has_role(users["demo-investigator"], INVESTIGATOR)
    assert user_has_role(users["demo-supervisor"], SUPERVISOR)
    admin = get_user_model().objects.get(username="demo-admin")
    assert user_has_role(admin, ADMIN) and admin.is_staff and not admin.is_superuser

    gallery = Gallery.objects.get(name=DEMO_GALLERY_NAME)
    assert gallery.kind == Gallery.Kind.CUSTODY
    assert "CelebA" in gallery.provenance and "DEMONSTRATION ONLY" in gallery.provenance
    refs = set(gallery.subjects.values_list("external_ref", flat=True))
    assert IDENTITIES - 1 <= len(refs) <= IDENTITIES and all(r.startswith("DEMO-CELEBA-") for r in refs)
    assert gallery.images.count() >= 2 * IDENTITIES - 2

    case = Case.objects.get(reference=DEMO_CASE_REFERENCE)
    assert case.owner.username == "demo-investigator" and case.team == team
    assert case.purpose == Case.Purpose.OTHER and case.legal_basis == "Demonstration only — no real investigation"
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("user.created") == len(DEMO_USERS)
    assert actions.count("role.granted") == len(DEMO_USERS)
    assert {"team.created", "team.member_added", "team.supervisor_added", "gallery.create", "gallery.enrol"} <= set(
        actions
    )
    assert actions.count("case.created") == 1

    # The probe the guide suggests is not in the gallery, and the search finds its identity first.
    probe = Path(UPLOAD_LINE.search(output).group(1))  # type: ignore[union-attr]
    assert probe.is_file()
    sha = hashlib.sha256(probe.read_bytes()).hexdigest()
    assert not GalleryImage.objects.filter(gallery=gallery, sha256=sha).exists()
    image = decode_image_file(probe)
    engine = active_engine()
    faces = engine.analyse(image)
    main = primary_face_index([f.detection for f in faces], image.shape)
    assert main is not None
    hits = search_galleries(template=faces[main].template, pack_key=engine.pack.key, gallery_ids=[gallery.pk], top_k=3)
    assert hits and hits[0].subject_ref == f"DEMO-CELEBA-{probe.parent.name}"

    # The printed passwords work; the investigator sees the demo case on the dashboard, investigator2 does not.
    client, status = _login("demo-investigator", passwords["demo-investigator"])
    assert status == 302
    assert DEMO_CASE_REFERENCE in client.get(reverse("home")).content.decode()
    client2, status = _login("demo-investigator2", passwords["demo-investigator2"])
    assert status == 302 and DEMO_CASE_REFERENCE not in client2.get(reverse("home")).content.decode()
    assert client2.get(reverse("cases:workbench", args=[case.pk])).status_code == 404
    for username in ("demo-supervisor", "demo-admin"):
        assert _login(username, passwords[username])[1] == 302
    admin_client, _ = _login("demo-admin", passwords["demo-admin"])
    assert admin_client.get(reverse("admin:index")).status_code == 200

    before = _counts()
    again = _demo_setup("--demo-identities", str(IDENTITIES), "--faces-data", str(faces_dir))
    assert _passwords(again) == {}
    assert "demo users exist already" in again and "--reset-passwords" in again
    assert _counts() == before
    assert audit_chain_verify().ok


def test_reset_passwords_replaces_them(gallery_env: Path, tmp_path: Path) -> None:
    first = _passwords(_demo_setup("--faces-data", str(tmp_path / "absent")))
    reset_output = _demo_setup("--reset-passwords", "--faces-data", str(tmp_path / "absent"))
    new = _passwords(reset_output)
    assert set(new) == set(first)
    for username, password in new.items():
        assert password != first[username]
        assert _login(username, first[username])[1] == 200  # the old one is refused (form shown again)
        assert _login(username, password)[1] == 302
    assert AuditEvent.objects.filter(action="user.password_reset").count() == len(DEMO_USERS)


def test_demo_setup_falls_back_to_insightface_photos(gallery_env: Path, tmp_path: Path) -> None:
    output = _demo_setup("--faces-data", str(tmp_path / "absent"))
    gallery = Gallery.objects.get(name=DEMO_GALLERY_NAME)
    assert "insightface" in gallery.provenance and "DEMONSTRATION ONLY" in gallery.provenance
    refs = set(gallery.subjects.values_list("external_ref", flat=True))
    assert refs == {f"DEMO-T1-{n}" for n in range(1, 7)} | {"DEMO-TH-1"}
    assert gallery.images.count() == 7
    probe = Path(UPLOAD_LINE.search(output).group(1))  # type: ignore[union-attr]
    assert probe.name == "t1.jpg" and probe.is_file()
    assert Case.objects.filter(reference=DEMO_CASE_REFERENCE).count() == 1

    before = _counts()
    _demo_setup("--faces-data", str(tmp_path / "absent"))
    assert _counts() == before
