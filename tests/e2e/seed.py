"""Seed the end-to-end database: an investigator in a team, its supervisor, and a small custody gallery.

Run with the e2e environment (DATABASE_URL etc.): `python tests/e2e/seed.py FACES_DIR`. Prints one JSON line:
the probe photo to upload (a CelebA photo of an enrolled identity, itself not enrolled) and its subject_ref.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402

from accounts.models import Team  # noqa: E402
from search.enrolment import EnrolmentError, gallery_image_enrol  # noqa: E402
from search.galleries import gallery_create  # noqa: E402

PASSWORD = os.environ["E2E_PASSWORD"]
IDENTITIES = 20


def main(faces_dir: Path) -> None:
    users = {}
    for username, role in [("ivy", "investigator"), ("sam", "supervisor")]:
        user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        users[username] = user
    team = Team.objects.create(name="Major crime")
    team.members.add(users["ivy"])
    team.supervisors.add(users["sam"])

    gallery = gallery_create(name="Custody e2e", kind="custody", provenance="CelebA development subset")
    by_identity: dict[str, list[Path]] = {}
    with (faces_dir / "celeba" / "identities.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(faces_dir / "celeba" / "images" / row["file"])
    probe: dict[str, str] = {}
    enrolled_identities = 0
    for identity, paths in sorted(by_identity.items(), key=lambda kv: int(kv[0])):
        if enrolled_identities == IDENTITIES:
            break
        paths = sorted(paths)
        if len(paths) < 4:
            continue
        enrolled = 0
        for path in paths[:-1]:
            if enrolled == 2:
                break
            try:
                gallery_image_enrol(
                    gallery=gallery,
                    data=path.read_bytes(),
                    subject_ref=f"CUST-{identity}",
                    original_filename=path.name,
                )
            except EnrolmentError:
                continue
            enrolled += 1
        if enrolled:
            enrolled_identities += 1
            if not probe and enrolled == 2:
                probe = {"probe": str(paths[-1]), "subject_ref": f"CUST-{identity}"}
    print(json.dumps({**probe, "gallery": gallery.name, "identities": enrolled_identities}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
