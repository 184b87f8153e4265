"""Score normalisation against a reference cohort: the normaliser's arithmetic on real templates, building a
balanced cohort from a labelled set, switching it on, and a search that ranks and records with it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.roles import ADMIN
from audit.actions import AuditAction
from audit.models import AuditEvent
from cases.models import Search
from cases.searches import search_request
from faceengine.evaluation.datasets import primary_template
from faceengine.evaluation.demographics import demographic_rates, read_labels
from faceengine.normalisation import Normaliser, balanced_selection, threshold_at_same_fmr
from rfr.errors import Conflict
from search.cohorts import active_pack_key, score_cohort_activate, score_cohort_active, score_cohort_deactivate
from search.evaluations import evaluation_run_record
from search.models import EvaluationRun, ScoreCohort, Template
from tests.factories import build_case_world, client_for, make_user, workbench_objects_create

RACES = ("White", "Black", "Asian", "Indian", "Other")
PER_RACE = 8


@pytest.fixture(scope="module")
def utk_subset(faces_dir: Path, engine: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first PER_RACE adult UTKFace images of each race (labels CSV order), their labels file and templates."""
    folder = faces_dir / "utkface"
    with open(folder / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["age"]) >= 18]
    chosen = []
    for race in RACES:
        chosen.extend([row for row in rows if row["race"] == race][:PER_RACE])
    labels = tmp_path_factory.mktemp("utk") / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "age", "sex", "race"])
        writer.writeheader()
        writer.writerows(chosen)
    templates = []
    kept = []
    for row in chosen:
        template, _ = primary_template(engine, folder / "images" / row["file"])
        if template is not None:
            templates.append(template)
            kept.append(row)
    return {"labels": labels, "images": folder / "images", "rows": kept, "templates": np.stack(templates)}


def test_normalised_scores_are_symmetric_and_follow_the_formula(utk_subset: dict[str, Any]) -> None:
    templates = utk_subset["templates"]
    cohort, probes = templates[::2], templates[1::2]
    for method in ("csls", "asnorm"):
        normaliser = Normaliser(cohort, method=method, top_k=5)
        matrix = normaliser.score_matrix(probes)
        assert np.allclose(matrix, matrix.T, atol=1e-6)
        assert normaliser.score_pair(probes[0], probes[3]) == pytest.approx(normaliser.score_pair(probes[3], probes[0]))
    # CSLS computed directly: 2·cos − mean of each side's 5 best cohort cosines.
    normaliser = Normaliser(cohort, method="csls", top_k=5)
    a, b = probes[0], probes[1]
    top = [np.sort(cohort @ x)[-5:].mean() for x in (a, b)]
    assert normaliser.score_pair(a, b) == pytest.approx(2 * float(a @ b) - top[0] - top[1], abs=1e-5)


def test_a_cohort_member_is_not_its_own_neighbour(utk_subset: dict[str, Any]) -> None:
    """The same image in the cohort and among the compared templates must not leak: its statistics are those
    against the cohort without it."""
    templates = utk_subset["templates"]
    with_it = Normaliser(templates[:20], top_k=3).statistics(templates[:1])
    without_it = Normaliser(templates[1:20], top_k=3).statistics(templates[:1])
    assert with_it.mean[0] == pytest.approx(without_it.mean[0]) and with_it.std[0] == pytest.approx(without_it.std[0])
    assert np.sort(templates[:20] @ templates[0])[-1] == pytest.approx(1.0, abs=1e-5)


def test_balanced_selection_and_threshold_at_same_fmr() -> None:
    labels = ["A"] * 50 + ["B"] * 10 + [""] * 5 + ["C"] * 3
    chosen = balanced_selection(labels, 24, seed=3)
    counts = {value: sum(labels[i] == value for i in chosen) for value in "ABC"}
    assert counts == {"A": 8, "B": 8, "C": 3} and all(labels[i] for i in chosen)
    assert chosen == balanced_selection(labels, 24, seed=3) != balanced_selection(labels, 24, seed=4)

    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 0.1, 5000)
    normalised = 2 * raw - rng.normal(0.2, 0.02, 5000)
    threshold, fmr = threshold_at_same_fmr(raw, normalised, 0.2)
    assert fmr == pytest.approx(float((raw >= 0.2).mean()))
    assert int((normalised >= threshold).sum()) == int((raw >= 0.2).sum())


@pytest.mark.django_db
def test_build_a_balanced_cohort_activate_and_switch_off(utk_subset: dict[str, Any], engine: Any) -> None:
    call_command(
        "cohort", "build", "--labels", str(utk_subset["labels"]), "--images", str(utk_subset["images"]),
        "--name", "UTK test", "--size", "20", "--top-k", "3",
    )  # fmt: skip
    cohort = ScoreCohort.objects.get()
    assert cohort.pack_key == engine.pack.key and cohort.version == 1 and not cohort.active
    assert cohort.size == 20 and cohort.composition["race"] == {race: 4 for race in RACES}
    assert cohort.matrix().shape == (20, utk_subset["templates"].shape[1])
    members = {tuple(np.round(row, 5)) for row in cohort.matrix()}
    # Calibrated on the faces not drawn into the cohort, and the labels are not kept with the templates.
    assert cohort.calibration["faces"] == len(utk_subset["rows"]) - 20
    assert cohort.calibration["pairs"] == cohort.calibration["faces"] * (cohort.calibration["faces"] - 1) // 2
    assert len(members) == 20
    built = AuditEvent.objects.get(action=AuditAction.COHORT_BUILT)
    assert built.detail["composition"]["race"]["Black"] == 4 and built.detail["threshold"] == cohort.threshold

    score_cohort_activate(cohort_id=cohort.pk)
    assert score_cohort_active(pack_key=cohort.pack_key) == cohort
    with pytest.raises(Conflict):
        score_cohort_activate(cohort_id=cohort.pk)
    call_command(
        "cohort", "build", "--labels", str(utk_subset["labels"]), "--images", str(utk_subset["images"]),
        "--name", "UTK test 2", "--size", "10", "--top-k", "3", "--seed", "1", "--activate",
    )  # fmt: skip
    second = ScoreCohort.objects.get(version=2)
    assert score_cohort_active(pack_key=cohort.pack_key) == second
    activated = AuditEvent.objects.filter(action=AuditAction.COHORT_ACTIVATED).order_by("pk").last()
    assert activated is not None and activated.detail["before"] == f"cohort:{cohort.pk}"
    score_cohort_deactivate(pack_key=cohort.pack_key)
    assert score_cohort_active(pack_key=cohort.pack_key) is None
    assert AuditEvent.objects.filter(action=AuditAction.COHORT_DEACTIVATED).count() == 1


@pytest.mark.django_db
def test_a_search_with_a_cohort_active_ranks_by_normalised_score_and_records_it(
    gallery_env: Path, gallery: tuple[Any, dict[str, list[Path]]], utk_subset: dict[str, Any], engine: Any,
    run_on_commit: Any,
) -> None:  # fmt: skip
    gallery_obj, chosen = gallery
    templates = utk_subset["templates"]
    cohort = ScoreCohort.objects.create(
        pack_key=engine.pack.key, version=1, name="test", method="csls", top_k=5, size=len(templates),
        dimension=templates.shape[1], templates=templates.astype("<f4").tobytes(), raw_threshold=0.3, threshold=0.0,
    )  # fmt: skip
    score_cohort_activate(cohort_id=cohort.pk)

    world = build_case_world()
    workbench_objects_create(world)
    identity, paths = next(iter(chosen.items()))
    probe_template, _ = primary_template(engine, paths[2])
    assert probe_template is not None
    face = world.extra["face"]
    face.template, face.pack_key = probe_template.astype("<f4").tobytes(), engine.pack.key
    face.save(update_fields=["template", "pack_key"])

    search = run_on_commit(
        lambda: search_request(
            face=face, requested_by=world.users["owner"], gallery_ids=[gallery_obj.pk], justification="test", top_k=5
        )
    )
    search.refresh_from_db()
    assert search.status == Search.Status.DONE
    assert search.score_normalisation == f"cohort:{cohort.pk}" and search.threshold == cohort.threshold
    candidates = list(search.candidates.order_by("rank"))
    assert candidates and candidates[0].subject_ref == f"CUST-{identity}"
    normaliser = Normaliser(templates, method="csls", top_k=5)
    for candidate in candidates:
        gallery_template = np.frombuffer(bytes(Template.objects.get(pk=candidate.template_id).embedding), "<f4")
        assert candidate.score == pytest.approx(normaliser.score_pair(probe_template, gallery_template), abs=1e-5)
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True) and min(scores) >= cohort.threshold
    requested = AuditEvent.objects.filter(action=AuditAction.SEARCH_REQUESTED, target_id=str(search.pk)).get()
    assert requested.detail["score_normalisation"] == f"cohort:{cohort.pk}"
    shown = client_for(world.users["owner"]).get(f"/api/searches/{search.pk}/status/").json()
    assert shown["score_normalisation"] == f"cohort:{cohort.pk}" and shown["threshold"] == cohort.threshold


@pytest.mark.django_db
def test_cohorts_page_shows_composition_and_raw_beside_normalised(utk_subset: dict[str, Any], engine: Any) -> None:
    templates, rows = utk_subset["templates"], utk_subset["rows"]
    cohort = ScoreCohort.objects.create(
        pack_key=active_pack_key(), version=1, name="Page cohort", top_k=3, size=20, dimension=templates.shape[1],
        templates=templates[::2][:20].astype("<f4").tobytes(), raw_threshold=0.3, threshold=0.12,
        composition={"race": {"Black": 4, "White": 4}}, balanced_by="race", calibration={"fmr": 0.003, "faces": 20},
    )  # fmt: skip
    # Real figures from the subset: raw, and normalised against the other half (members are not evaluated).
    images, _ = read_labels(utk_subset["labels"])
    by_file = {row["file"]: template for row, template in zip(rows, templates, strict=True)}
    evaluated = [image for image in images if image.file in by_file][1::2]
    held = {image.file: by_file[image.file] for image in evaluated}
    for label, normaliser, threshold in (
        ("raw", None, 0.3),
        (cohort.normalisation_label, Normaliser(cohort.matrix(), top_k=3), cohort.threshold),
    ):
        figures, curves = demographic_rates(evaluated, held, operating_threshold=threshold, normaliser=normaliser)
        evaluation_run_record(
            pack_key=cohort.pack_key, kind="demographics", dataset_name="UTK subset", figures=figures,
            curves=curves, normalisation=label,
        )  # fmt: skip

    client = Client()
    client.force_login(make_user("ada", role=ADMIN))
    page = client.get("/manage/cohorts/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Page cohort, version 1" in text and "Black 4" in text and "raw cosine scores" in text
    assert "UTK subset (research data, not casework)" in text
    # Every race's false-match rate, raw beside normalised, as stored in the two runs.
    raw_run, normalised_run = (EvaluationRun.objects.get(normalisation=n) for n in ("raw", cohort.normalisation_label))
    for race in RACES:
        raw_fmr = raw_run.figures["groups"]["race"][race]["fmr"]["operating"]
        normalised_fmr = normalised_run.figures["groups"]["race"][race]["fmr"]["operating"]
        assert f"race: {race}</th><td>{100 * raw_fmr:.2f}%</td><td>{100 * normalised_fmr:.2f}%</td>" in text
    response = client.post(f"/manage/cohorts/{cohort.pk}/activate/")
    assert response.status_code == 302
    assert score_cohort_active(pack_key=cohort.pack_key) == cohort
    assert AuditEvent.objects.filter(action=AuditAction.COHORT_ACTIVATED, actor__username="ada").exists()
    assert "normalised</strong> against cohort Page cohort" in client.get("/manage/cohorts/").content.decode()

    investigator = Client()
    investigator.force_login(make_user("ivan"))
    assert investigator.get("/manage/cohorts/").status_code == 403
    assert investigator.post("/manage/cohorts/deactivate/", {"pack_key": cohort.pack_key}).status_code == 403


@pytest.mark.django_db
def test_evaluate_demographics_normalised_against_a_cohort(
    utk_subset: dict[str, Any], engine: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    templates, rows = utk_subset["templates"], utk_subset["rows"]
    members = templates[::2]
    cohort = ScoreCohort.objects.create(
        pack_key=engine.pack.key, version=1, name="eval", top_k=3, size=len(members), dimension=templates.shape[1],
        templates=members.astype("<f4").tobytes(), raw_threshold=0.3, threshold=0.1,
    )  # fmt: skip
    call_command(
        "evaluate", "demographics", "--labels", str(utk_subset["labels"]), "--images", str(utk_subset["images"]),
        "--json", "--normalise", cohort.normalisation_label,
    )  # fmt: skip
    figures = json.loads(capsys.readouterr().out)
    assert figures["normalisation"] == cohort.normalisation_label
    assert figures["thresholds"]["operating"] == cohort.threshold
    # The overall FMR at the cohort's threshold, computed directly with the normaliser.
    scores = Normaliser(members, top_k=3).score_matrix(templates)[np.triu_indices(len(templates), 1)]
    assert figures["overall"]["fmr"]["operating"] == pytest.approx(float((scores >= cohort.threshold).mean()))
    race = np.array([row["race"] for row in rows])
    upper = np.triu_indices(len(templates), 1)
    black = (race[upper[0]] == "Black") & (race[upper[1]] == "Black")
    assert figures["groups"]["race"]["Black"]["fmr"]["operating"] == pytest.approx(
        float((scores[black] >= cohort.threshold).mean())
    )
    with pytest.raises(CommandError, match="No score cohort"):
        call_command(
            "evaluate", "demographics", "--labels", str(utk_subset["labels"]), "--images",
            str(utk_subset["images"]), "--json", "--normalise", "cohort:999999",
        )  # fmt: skip
