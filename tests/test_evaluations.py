"""Evaluation runs stored per model pack (search.evaluations): recording, reading back, auditing."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.roles import ADMIN
from audit.actions import AuditAction
from audit.models import AuditEvent
from cases.demo import demo_evaluations_ensure
from faceengine.evaluation.datasets import primary_template
from faceengine.evaluation.demographics import _ratio, curves_from_pair_scores, demographic_rates, read_labels
from rfr.errors import InvalidInput
from search.evaluations import (
    evaluation_run_latest,
    evaluation_run_progress,
    evaluation_run_queue,
    evaluation_run_record,
    evaluation_runs_for_pack,
    evaluation_spec_resolve,
)
from search.models import EvaluationRun
from tests.factories import celeba_identities, make_user


@pytest.mark.django_db
def test_recorded_run_round_trips_and_is_audited() -> None:
    curves = {"overall": [[0.3, 0.003, None], [0.35, 0.001, None]], "race=White": [[0.3, 0.002, None]]}
    figures = {"images": 10, "fte": 0, "thresholds": {"operating": 0.3}}
    older = evaluation_run_record(
        pack_key="pack-a", kind="demographics", dataset_name="UTKFace adults", figures=figures, curves=curves,
        labels_sha256="ab" * 32, source="/data/utkface/labels.csv",
    )  # fmt: skip
    newer = evaluation_run_record(
        pack_key="pack-a", kind="demographics", dataset_name="UTKFace adults", figures=figures, curves=curves,
    )  # fmt: skip
    EvaluationRun.objects.create(pack_key="pack-a", kind="demographics", dataset_name="queued one")
    evaluation_run_record(pack_key="pack-b", kind="verification", dataset_name="LFW", figures={}, curves={})

    stored = EvaluationRun.objects.get(pk=older.pk)
    assert stored.figures == figures and stored.curves == curves
    assert stored.status == EvaluationRun.Status.DONE and stored.finished_at is not None
    assert stored.run_by is None and stored.run_by_label.startswith("command line (")
    assert stored.dataset_is_research and stored.normalisation == "raw"
    assert evaluation_runs_for_pack(pack_key="pack-a")[0].dataset_name == "queued one"
    assert list(evaluation_runs_for_pack(pack_key="pack-a", finished_only=True)) == [newer, older]
    assert evaluation_run_latest(pack_key="pack-a") == newer
    assert evaluation_run_latest(pack_key="pack-a", kind="verification") is None
    assert evaluation_run_latest(pack_key="pack-a", normalisation="cohort:1") is None
    event = AuditEvent.objects.filter(action=AuditAction.EVALUATION_RUN_RECORDED, target_id=str(older.pk)).get()
    assert event.detail["labels_sha256"] == "ab" * 32 and event.detail["dataset"] == "UTKFace adults"


# --- evaluate demographics ----------------------------------------------------------------------------------
PER_RACE = 8  # images per race in the UTKFace subset (half children where the race has them): 40 images


def _utk_subset(faces_dir: Path, dest: Path) -> Path:
    """A small UTKFace folder (`labels.csv` + `images/`), a few adults and children of each race."""
    utk = faces_dir / "utkface"
    with (utk / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen: list[dict[str, str]] = []
    for race in sorted({row["race"] for row in rows}):
        of_race = [row for row in rows if row["race"] == race]
        children = [row for row in of_race if int(row["age"]) < 18][: PER_RACE // 2]
        adults = [row for row in of_race if int(row["age"]) >= 18][: PER_RACE - len(children)]
        chosen.extend(children + adults)
    (dest / "images").mkdir(parents=True)
    for row in chosen:
        shutil.copy(utk / "images" / row["file"], dest / "images" / row["file"])
    with (dest / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "age", "sex", "race"])
        writer.writeheader()
        writer.writerows(chosen)
    return dest


@pytest.fixture(scope="module")
def utk_subset(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Path:
    return _utk_subset(faces_dir, tmp_path_factory.mktemp("utk"))


@pytest.fixture(scope="module")
def utk_templates(utk_subset: Path, engine: Any) -> dict[str, np.ndarray | None]:
    images, _ = read_labels(utk_subset / "labels.csv")
    return {image.file: primary_template(engine, utk_subset / "images" / image.file)[0] for image in images}


def _direct_fmr(templates: list[np.ndarray], threshold: float) -> float | None:
    scores = [float(a @ b) for i, a in enumerate(templates) for b in templates[i + 1 :]]
    return sum(s >= threshold for s in scores) / len(scores) if scores else None


def test_demographic_group_figures_match_a_direct_computation(
    utk_subset: Path, utk_templates: dict[str, np.ndarray | None]
) -> None:
    images, _ = read_labels(utk_subset / "labels.csv")
    figures, curves = demographic_rates(images, utk_templates, operating_threshold=0.30)
    assert {"images", "fte", "thresholds", "groups", "ratios"} <= set(figures)
    assert set(figures["thresholds"]) == {"operating", "fmr_1e-3", "fmr_1e-4"}
    assert set(figures["groups"]) == {"sex", "race", "age"}
    assert figures["images"] == len(images) and figures["fte"] == sum(t is None for t in utk_templates.values())
    enrolled = [image for image in images if utk_templates[image.file] is not None]
    for attribute, groups in figures["groups"].items():
        assert set(figures["ratios"][attribute]) <= set(figures["thresholds"])
        for value, row in groups.items():
            members = [image for image in images if image.labels[attribute] == value]
            assert row["n"] == len(members)
            assert row["fte"] == sum(utk_templates[image.file] is None for image in members)
            group_templates = [utk_templates[i.file] for i in enrolled if i.labels[attribute] == value]
            for name, threshold in figures["thresholds"].items():
                expected = _direct_fmr(group_templates, threshold)  # type: ignore[arg-type]
                assert row["fmr"][name] == pytest.approx(expected, abs=1e-12), (attribute, value, name)
    # the threshold for overall FMR 1e-3: at most that rate at it, more just below it
    everyone = [utk_templates[i.file] for i in enrolled]
    threshold = figures["thresholds"]["fmr_1e-3"]
    assert _direct_fmr(everyone, threshold) <= 1e-3 < _direct_fmr(everyone, threshold - 1e-4)  # type: ignore[arg-type, operator]
    # children's faces are in the subset, and under 18 is a group of its own
    assert figures["groups"]["age"]["under 18"]["n"] > 0
    # the curves read back the same rates at the operating threshold
    point = next(p for p in curves["race=White"] if p[0] == 0.3)
    assert point[1] == figures["groups"]["race"]["White"]["fmr"]["operating"] and point[2] is None


def test_ratio_floors_a_group_without_false_matches() -> None:
    groups = {"A": {"fmr": {"t": 0.0}}, "B": {"fmr": {"t": 0.01}}, "tiny": {"fmr": {"t": 0.5}}}
    pairs = {"A": 1000, "B": 1000, "tiny": 3}
    ratio, detail = _ratio(groups, pairs, "t")
    assert ratio == pytest.approx(0.01 / (1 / 1000))
    assert detail == {"highest": "B", "lowest": "A", "floored": True}


@pytest.mark.django_db
def test_evaluate_demographics_command_stores_the_run(
    utk_subset: Path, capsys: pytest.CaptureFixture[str], pack_dir: Path
) -> None:
    call_command(
        "evaluate", "demographics", "--labels", str(utk_subset / "labels.csv"), "--images",
        str(utk_subset / "images"), "--adults", "--json", "--store", "--dataset-name", "UTKFace subset",
    )  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    run = EvaluationRun.objects.get()
    assert run.figures == printed and run.kind == "demographics" and run.status == "done"
    assert printed["images"] == sum(
        1 for r in csv.DictReader((utk_subset / "labels.csv").open()) if int(r["age"]) >= 18
    )
    assert "under 18" not in printed["groups"]["age"]
    assert run.labels_sha256 == hashlib.sha256((utk_subset / "labels.csv").read_bytes()).hexdigest()
    assert run.dataset_is_research and run.run_by_label.startswith("command line")
    assert run.curves["overall"][0][0] == -0.2 and run.curves["overall"][-1][0] == 1.0
    assert evaluation_run_latest(pack_key=run.pack_key, kind="demographics") == run
    with pytest.raises(CommandError, match="dataset-name"):
        call_command("evaluate", "demographics", "--labels", str(utk_subset / "labels.csv"), "--images",
                     str(utk_subset / "images"), "--store")  # fmt: skip


@pytest.mark.django_db(transaction=False)
def test_queued_run_measures_with_progress_and_refuses_outside_folders(
    utk_subset: Path, settings: Any, tmp_path: Path, run_on_commit: Any
) -> None:
    settings.RFR_EVALUATION_ROOTS = [utk_subset.resolve()]
    admin = make_user("evaluator", role=ADMIN)
    with pytest.raises(InvalidInput) as refused:
        evaluation_spec_resolve(kind="demographics", folder=str(tmp_path), labels="labels.csv")
    assert refused.value.code == "folder_outside_roots"
    spec = evaluation_spec_resolve(kind="demographics", folder=str(utk_subset), labels="labels.csv")
    run = run_on_commit(lambda: evaluation_run_queue(spec=spec, dataset_name="UTKFace subset (queued)", actor=admin))
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.DONE, run.error_message
    assert run.progress_total == run.figures["images"] == run.progress_done > 0
    assert run.run_by == admin and run.figures["groups"]["race"]
    assert evaluation_run_progress(run=run)["progress"] == 100
    actions = set(AuditEvent.objects.filter(target_id=str(run.pk)).values_list("action", flat=True))
    assert actions == {AuditAction.EVALUATION_RUN_QUEUED, AuditAction.EVALUATION_RUN_RECORDED}
    # a labels file inside the roots that names an image outside them: refused before any image is read
    outside = tmp_path / "elsewhere.jpg"
    shutil.copy(next((utk_subset / "images").iterdir()), outside)
    (utk_subset / "escape.csv").write_text(f"file,age,sex,race\n../../{tmp_path.name}/elsewhere.jpg,30,F,White\n")
    spec = evaluation_spec_resolve(kind="demographics", folder=str(utk_subset), labels="escape.csv")
    escaped = run_on_commit(lambda: evaluation_run_queue(spec=spec, dataset_name="escape", actor=admin))
    escaped.refresh_from_db()
    assert escaped.status == EvaluationRun.Status.FAILED and "outside" in escaped.error_message
    assert not escaped.figures


def test_fnmr_per_group_where_identities_are_given(faces_dir: Path, engine: Any, tmp_path: Path) -> None:
    """CelebA people with identities (no age or race: those groups are 'unknown'); a faceless image of one of
    them is a failure to enrol and its genuine pairs are misses."""
    people = [(identity, files[:3]) for identity, files in celeba_identities(faces_dir).items() if len(files) >= 3][:4]
    sexes = {row["identity"]: row["sex"] for row in csv.DictReader((faces_dir / "celeba" / "identities.csv").open())}
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "age", "sex", "race", "identity"])
        for identity, files in people:
            writer.writerows([file, "", sexes[identity], "", identity] for file in files)
        writer.writerow(["blank.png", "", sexes[people[0][0]], "", people[0][0]])
    (tmp_path / "images").symlink_to(faces_dir / "celeba" / "images")
    images, has_identity = read_labels(labels)
    assert has_identity
    templates = {
        i.file: None if i.file == "blank.png" else primary_template(engine, tmp_path / "images" / i.file)[0]
        for i in images
    }
    figures, _ = demographic_rates(images, templates, operating_threshold=0.30, has_identity=True)
    assert figures["fte"] >= 1 and figures["groups"]["race"]["unknown"]["n"] == len(images)
    for sex, row in figures["groups"]["sex"].items():
        members = [i for i in images if i.labels["sex"] == sex]
        genuine = [(a, b) for n, a in enumerate(members) for b in members[n + 1 :] if a.identity == b.identity]
        hits = sum(
            templates[a.file] is not None
            and templates[b.file] is not None
            and float(templates[a.file] @ templates[b.file]) >= 0.30  # type: ignore[operator]
            for a, b in genuine
        )
        assert row["genuine_pairs"] == len(genuine)
        assert row["fnmr"]["operating"] == pytest.approx(1 - hits / len(genuine) if genuine else None)


def test_verification_curves_from_pair_scores_read_back_the_rates(
    utk_templates: dict[str, np.ndarray | None],
) -> None:
    """Real scores between UTKFace faces, the top tenth called genuine (a labelling for the test, not a claim):
    every curve point equals the rate counted directly, per group over same-group pairs only."""
    vectors = [t for t in utk_templates.values() if t is not None][:24]
    pairs = [(i, j) for i in range(len(vectors)) for j in range(i + 1, len(vectors))]
    scores = np.array([float(vectors[i] @ vectors[j]) for i, j in pairs])
    same = scores > np.quantile(scores, 0.9)
    groups = ["A" if i % 2 == j % 2 == 0 else "B" if i % 2 == j % 2 == 1 else "A/B" for i, j in pairs]
    curves = curves_from_pair_scores(scores, same, groups, "side")
    assert set(curves) == {"overall", "side=A", "side=B"}
    assert same[np.array(groups) == "A"].any()
    for key, mask in (("overall", np.ones(len(pairs), bool)), ("side=A", np.array(groups) == "A")):
        for threshold, fmr, fnmr in curves[key][::40]:
            impostor, genuine = scores[mask & ~same], scores[mask & same]
            assert fmr == pytest.approx((impostor >= threshold).mean())
            assert fnmr == (pytest.approx((genuine < threshold).mean()) if len(genuine) else None)


@pytest.mark.django_db
def test_demo_setup_stores_the_demographic_evaluations_once(utk_subset: Path, tmp_path: Path, pack_dir: Path) -> None:
    (tmp_path / "utkface").symlink_to(utk_subset)
    first = demo_evaluations_ensure(faces_data=tmp_path)
    assert [created for _, created in first] == [True, True]
    adults, everyone = (run for run, _ in first)
    assert adults.figures["age_filter"]["min_age"] == 18 and "under 18" not in adults.figures["groups"]["age"]
    assert everyone.figures["images"] == len(read_labels(utk_subset / "labels.csv")[0])
    assert adults.dataset_is_research and "research" in adults.dataset_name
    again = demo_evaluations_ensure(faces_data=tmp_path)
    assert [(run.pk, created) for run, created in again] == [(adults.pk, False), (everyone.pk, False)]
    assert demo_evaluations_ensure(faces_data=tmp_path / "absent") == []
