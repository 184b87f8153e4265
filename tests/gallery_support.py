"""Shared helpers for the gallery, index and identification tests (no tests of its own)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from faceengine.evaluation import natural_key


@pytest.fixture
def gallery_env(settings, tmp_path: Path):
    """Media and index under a fresh folder, tasks in-process, and no index left over from another test."""
    from search.index import get_index

    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    get_index().clear()
    yield tmp_path
    get_index().clear()


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
