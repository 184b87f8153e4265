"""`manage.py evaluate`: verification on real LFW pairs, with a failure to enrol that must be counted, and the
identification adapter."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from faceengine.evaluation import best_threshold, equal_error_rate, tar_at_far
from tests.factories import celeba_identities

pytestmark = pytest.mark.embedded


# The command measures the active model pack, which an admin may have chosen (stored in the database).
@pytest.mark.django_db
def test_verification_json_counts_failures_to_enrol_as_non_matches(
    faces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pack_dir: Path
) -> None:
    with (faces_dir / "lfw" / "pairs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # a few pairs of each kind from each fold, plus one genuine pair whose right image has no face
    sample = [
        r for fold in "123" for same in "10" for r in [x for x in rows if x["fold"] == fold and x["same"] == same][:4]
    ]
    images = tmp_path / "images"
    for row in sample:
        for side in ("left", "right"):
            target = images / row[side]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(faces_dir / "lfw" / "images" / row[side], target)
    (images / "Nobody").mkdir()
    Image.new("RGB", (250, 250), (90, 120, 160)).save(images / "Nobody" / "Nobody_0001.jpg")
    faceless = {"fold": "1", "left": sample[0]["left"], "right": "Nobody/Nobody_0001.jpg", "same": "1"}
    pairs = tmp_path / "pairs.csv"
    with pairs.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["fold", "left", "right", "same"])
        writer.writeheader()
        writer.writerows([*sample, faceless])
    shutil.copy(faces_dir / "lfw" / "sex.csv", tmp_path / "sex.csv")

    call_command(
        "evaluate", "verification", "--pairs", str(pairs), "--images", str(images), "--json",
        "--group-by", f"{tmp_path / 'sex.csv'}:sex",
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    for key in ("pairs", "fte_images", "accuracy_mean", "accuracy_std", "tar_at_far_1e-2", "tar_at_far_1e-3"):
        assert key in result
    assert {"eer", "seconds", "groups"} <= set(result)
    assert result["pairs"] == len(sample) + 1, "a pair with a failure to enrol is kept, not dropped"
    assert result["fte_images"] == 1
    assert result["fte_pairs"] == 1
    assert "Nobody/Nobody_0001.jpg: no face found" in result["failures"]
    # the easy pairs are all right; the faceless genuine pair is necessarily wrong
    assert 0.85 <= result["accuracy_mean"] < 1.0
    assert {g["group"] for g in result["groups"]} <= {"F", "M", "F/M", "unknown", "M/unknown", "F/unknown"}


def test_metrics_on_known_scores() -> None:
    same = np.array([True, True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.0, -0.1])
    threshold = best_threshold(scores, same)
    # 0.15 and 0.65 both get 7 of 8 right; ties go to the lower threshold, midway between two scores
    assert threshold == pytest.approx(0.15)
    assert ((scores >= threshold) == same).mean() == pytest.approx(7 / 8)
    tar, at = tar_at_far(scores, same, 0.25)  # one impostor in four may pass: accept above the second highest
    assert at == pytest.approx(0.1) and tar == pytest.approx(1.0)
    tar, at = tar_at_far(scores, same, 0.1)  # none may pass: accept above the highest impostor
    assert at == pytest.approx(0.6) and tar == pytest.approx(0.75)
    eer, _ = equal_error_rate(scores, same)
    assert eer == pytest.approx(0.25)


# The command measures the active model pack, which an admin may have chosen (stored in the database).
@pytest.mark.django_db
def test_identification_command_passes_engine_and_limits_and_reports_errors(
    faces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pack_dir: Path
) -> None:
    identities = list(celeba_identities(faces_dir).items())[:5]
    csv_path = tmp_path / "ids.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "identity"])
        writer.writerows([file, identity] for identity, files in identities for file in files[:2])
    images = faces_dir / "celeba" / "images"

    call_command("evaluate", "identification", "--identities", str(csv_path), "--images", str(images), "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["gallery_size"] + result["fte"] == 4  # the fifth identity is kept out of the gallery
    assert result["mated_searches"] == 4 and result["nonmated_searches"] == 2
    call_command("evaluate", "identification", "--identities", str(csv_path), "--images", str(images))
    assert "rank-1" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no column"):
        call_command(
            "evaluate", "identification", "--identities", str(csv_path), "--images", str(images), "--group-by", "sex"
        )
