"""`evaluate identification`: the protocol's bookkeeping on a small real CelebA subset, and its thresholds."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from faceengine import FaceEngine
from faceengine.evaluation import (
    format_identification_report,
    natural_key,
    run_identification,
    threshold_at_fpir,
)
from rfr.engine import image_limits
from tests.factories import celeba_identities

KEYS = {
    "gallery_size",
    "mated_searches",
    "nonmated_searches",
    "rank1",
    "rank10",
    "fnir_at_fpir_1e-2",
    "fnir_at_fpir_1e-3",
    "fte",
    "seconds",
    "groups",
}


def test_natural_order_and_threshold() -> None:
    assert sorted(["a10", "a2", "12", "7", "B1"], key=natural_key) == ["7", "12", "a2", "a10", "B1"]
    tops = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    threshold = threshold_at_fpir(tops, 0.1)
    assert sum(score > threshold for score in tops) / len(tops) <= 0.1
    assert threshold == 0.8  # the largest FPIR not above 0.1 is reached with one of ten above threshold
    assert threshold_at_fpir(tops, 0.001) == 0.9  # unresolvable below 1/N: nothing above the highest
    assert threshold_at_fpir([], 0.01) == -math.inf


def test_identification_on_a_celeba_subset(engine: FaceEngine, faces_dir: Path, tmp_path: Path) -> None:
    identities = list(celeba_identities(faces_dir).items())[:10]
    csv_path = tmp_path / "ids.csv"
    with open(faces_dir / "celeba" / "identities.csv", newline="") as handle:
        sex = {row["identity"]: row["sex"] for row in csv.DictReader(handle)}
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "identity", "sex"])
        # Written in reverse so the function, not the file, has to put them in order.
        for identity, files in reversed(identities):
            for file in reversed(files[:3]):
                writer.writerow([file, identity, sex[identity]])

    result = run_identification(
        engine,
        identities_csv=csv_path,
        images_dir=faces_dir / "celeba" / "images",
        group_by="sex",
        limits=image_limits(),
    )
    assert set(result) == KEYS
    kept_out = [identities[4], identities[9]]  # every fifth identity in natural order
    enrolled = [entry for entry in identities if entry not in kept_out]
    assert result["nonmated_searches"] == sum(len(files[:3]) for _, files in kept_out)
    assert result["mated_searches"] == sum(len(files[:3]) - 1 for _, files in enrolled)
    assert result["gallery_size"] + result["fte"] == len(enrolled)
    assert 0.6 <= result["rank1"] <= result["rank10"] <= 1.0
    for key in ("fnir_at_fpir_1e-2", "fnir_at_fpir_1e-3"):
        assert 1 - result["rank1"] <= result[key] <= 1.0
    groups = result["groups"]
    assert sum(g["mated_searches"] for g in groups.values()) == result["mated_searches"]
    assert sum(g["nonmated_searches"] for g in groups.values()) == result["nonmated_searches"]
    report = format_identification_report(result)
    assert "rank-1" in report and "FNIR at FPIR 0.01" in report

    with pytest.raises(ValueError, match="no column"):
        run_identification(engine, identities_csv=csv_path, images_dir=faces_dir, group_by="nonexistent")
