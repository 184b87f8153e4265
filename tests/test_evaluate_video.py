"""`manage.py evaluate video` on two of the synthetic clips, with a distractor list that also names the clips'
own people (who must not be enrolled as distractors)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

CLIPS = ("dev_013.mp4", "dev_016.mp4")  # a distractor clip (IED 30) and a large-face clip (IED 40)


@pytest.fixture(scope="module")
def video_dir(faces_dir: Path) -> Path:
    path = faces_dir.parent / "video"
    if not (path / "README.md").is_file():
        pytest.skip(f"shared video data not found at {path}")
    return path


@pytest.mark.django_db
def test_evaluate_video_reports_ranks_fpir_and_speed(
    faces_dir: Path, video_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic = video_dir / "synthetic"
    with (synthetic / "labels.csv").open() as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = [row for row in reader if row["clip"] in CLIPS]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    # Distractors: eight other CelebA people, plus the clips' own target and distractor (to be left out).
    with (faces_dir / "celeba" / "identities.csv").open() as handle:
        celeba = list(csv.DictReader(handle))
    own = {row["target_identity"] for row in rows} | {row["distractor_identity"] for row in rows}
    own.discard("")
    others = sorted({row["identity"] for row in celeba} - own)[:8]
    listed = [next(r for r in celeba if r["identity"] == identity) for identity in [*others, *sorted(own)]]
    distractors = tmp_path / "distractors.csv"
    with distractors.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "identity", "sex"])
        writer.writeheader()
        writer.writerows(listed)

    images = faces_dir / "celeba" / "images"
    call_command(
        "evaluate",
        "video",
        "--labels",
        str(labels),
        "--videos",
        str(synthetic),
        "--images",
        str(images),
        "--distractors",
        f"{distractors}:{images}",
        "--json",
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["clips"] == 2 and figures["fte_clips"] == 0
    assert figures["gallery_target_templates"] == 4  # two gallery photos per target
    assert figures["gallery_distractor_templates"] + figures["gallery_fte"] == 8  # the clips' people left out
    assert figures["gallery_subjects"] == 2 + figures["gallery_distractor_templates"]
    assert figures["rank1"] == 1.0 and figures["rank10"] == 1.0
    assert figures["rank1_target_track"] == 1.0 and figures["ground_truth"] is True
    assert figures["distractor_clips"] == 1 and figures["distractor_tracks"] >= 1
    assert figures["distractor_fpir"] == 0.0  # the distractor is not enrolled: no candidate above 0.3
    assert figures["operating_threshold"] == pytest.approx(0.3)
    assert figures["realtime_factor"] > 0 and figures["video_seconds"] == pytest.approx(16.0, abs=0.1)
    detail = {d["clip"]: d for d in figures["clips_detail"]}
    assert detail["dev_013.mp4"]["distractor"] is True and detail["dev_013.mp4"]["tracks"] >= 2
    assert {"decode", "detect", "embed", "track"} <= set(figures["stage_seconds"])


def test_evaluate_video_refuses_a_labels_file_of_another_layout(tmp_path: Path, faces_dir: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("file,identity\na.jpg,1\n")
    with pytest.raises(CommandError, match="lacks the column"):
        call_command(
            "evaluate", "video", "--labels", str(labels), "--videos", str(tmp_path), "--images", str(tmp_path), "--json"
        )
