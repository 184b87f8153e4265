"""Accuracy and fairness in the product (issue 12 items 3-5): the accuracy page and its PDF annex, thresholds
set with the evidence shown first, a search recording the threshold and evaluation it relied on, and scores
with meaning on the candidate list, the API and the report.

The stored evaluation is real: templates of a small UTKFace subset made by the active pack, every pair of two
different images counted per group as `evaluate demographics` counts them, stored with evaluation_run_record.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from accounts.roles import ADMIN, SUPERVISOR
from audit.models import AuditEvent
from cases import searches
from cases.models import Search
from cases.presenters import candidate_score_meaning, candidate_score_phrase
from faceengine import FaceEngine
from faceengine.evaluation.datasets import primary_template
from search.accuracy import curve_rates_at, evaluation_run_for_scores, run_rates_at, score_meaning
from search.evaluations import evaluation_run_record
from search.models import EvaluationRun, Gallery, PackThreshold
from search.thresholds import threshold_for_search
from tests.factories import build_case_world, client_for, make_user, workbench_objects_create

pytestmark = pytest.mark.django_db

PER_GROUP = 8  # adults per (sex, race): 64 images, 2,016 pairs
RACES = ("Asian", "Black", "Indian", "White")
GRID = [round(-0.2 + i * 0.0025, 4) for i in range(481)]


def _curve(scores: np.ndarray) -> list[list[float | None]]:
    ordered = np.sort(scores)
    n = len(ordered)
    return [[t, float(n - np.searchsorted(ordered, t - 1e-9, side="left")) / n, None] for t in GRID]


@pytest.fixture(scope="module")
def utk_subset(faces_dir: Path, engine: FaceEngine) -> dict[str, Any]:
    """Templates, labels and every impostor pair's score of a balanced adult UTKFace subset."""
    root = faces_dir / "utkface"
    chosen: list[dict[str, str]] = []
    counts: dict[tuple[str, str], int] = {}
    with (root / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            key = (row["sex"], row["race"])
            if row["race"] in RACES and int(row["age"]) >= 18 and counts.get(key, 0) < PER_GROUP:
                counts[key] = counts.get(key, 0) + 1
                chosen.append(row)
    templates, rows = [], []
    for row in chosen:
        template, _ = primary_template(engine, root / "images" / row["file"], None)
        if template is not None:
            templates.append(template)
            rows.append(row)
    matrix = np.stack(templates).astype(np.float32)
    scores = matrix @ matrix.T
    upper = np.triu(np.ones(scores.shape, dtype=bool), k=1)
    return {"rows": rows, "images": len(chosen), "scores": scores, "upper": upper, "pack_key": engine.pack.key}


def _only(subset: dict[str, Any], attribute: str, value: str) -> dict[str, Any]:
    """The subset restricted to one group's images (another data set, as far as the store is concerned)."""
    keep = np.array([r[attribute] == value for r in subset["rows"]])
    return {
        **subset,
        "rows": [r for r, k in zip(subset["rows"], keep, strict=True) if k],
        "images": int(keep.sum()),
        "scores": subset["scores"][np.ix_(keep, keep)],
        "upper": subset["upper"][np.ix_(keep, keep)],
    }


def _store(
    subset: dict[str, Any], pack_key: str | None = None, name: str = "UTKFace adults (test subset)"
) -> EvaluationRun:
    rows, scores, upper = subset["rows"], subset["scores"], subset["upper"]
    curves = {"overall": _curve(scores[upper])}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in ("sex", "race"):
        labels = np.array([r[attribute] for r in rows])
        groups[attribute] = {}
        for value in sorted(set(labels)):
            both = upper & (labels[:, None] == value) & (labels[None, :] == value)
            curves[f"{attribute}={value}"] = _curve(scores[both])
            groups[attribute][value] = {"n": int((labels == value).sum()), "fte": 0, "impostor_pairs": int(both.sum())}
    figures = {
        "images": subset["images"],
        "fte": subset["images"] - len(rows),
        "faces": len(rows),
        "thresholds": {"operating": 0.30},
        "overall": {"impostor_pairs": int(upper.sum())},
        "groups": groups,
    }
    return evaluation_run_record(
        pack_key=pack_key or subset["pack_key"],
        kind=EvaluationRun.Kind.DEMOGRAPHICS,
        dataset_name=name,
        figures=figures,
        curves=curves,
        labels_sha256=hashlib.sha256(repr([r["file"] for r in rows]).encode()).hexdigest(),
        source="utkface/labels.csv",
        run_by_label="test suite",
    )


def _direct_fmr(subset: dict[str, Any], threshold: float, attribute: str = "", value: str = "") -> float:
    mask = subset["upper"]
    if attribute:
        labels = np.array([r[attribute] for r in subset["rows"]])
        mask = mask & (labels[:, None] == value) & (labels[None, :] == value)
    return float((subset["scores"][mask] >= threshold).mean())


def test_rates_read_back_match_a_direct_count(utk_subset: dict[str, Any]) -> None:
    run = _store(utk_subset)
    at = run_rates_at(run, 0.30)
    assert at["overall"].fmr == pytest.approx(_direct_fmr(utk_subset, 0.30))
    by_key = {(g.attribute, g.value): g for g in at["groups"]}
    for value in ("F", "M"):
        assert by_key[("sex", value)].rates.fmr == pytest.approx(_direct_fmr(utk_subset, 0.30, "sex", value))
    # Between grid points the rate of the grid point below is read: never lower than the true rate.
    score = float(np.quantile(utk_subset["scores"][utk_subset["upper"]], 0.995)) + 0.001
    read = curve_rates_at(run.curves["overall"], score)
    assert read is not None and read.fmr is not None
    assert read.fmr >= _direct_fmr(utk_subset, score)
    assert read.fmr == pytest.approx(_direct_fmr(utk_subset, max(t for t in GRID if t <= score)))
    # The ratio per attribute is the highest group rate over the lowest, of groups with enough pairs.
    race = at["ratios"]["race"]
    rated = {g.value: g.rates.fmr for g in at["groups"] if g.attribute == "race" and g.pairs >= 100}
    assert race["highest"] == max(rated, key=lambda k: max(rated[k], 1 / by_key[("race", k)].pairs))


def test_score_meaning_says_how_often_different_people_scored_so_high(utk_subset: dict[str, Any]) -> None:
    assert evaluation_run_for_scores(pack_key=utk_subset["pack_key"]) is None
    none = score_meaning(score=0.42, run=None)
    assert none.fmr is None and "no stored evaluation for this pack" in none.text
    run = _store(utk_subset)
    assert evaluation_run_for_scores(pack_key=utk_subset["pack_key"]) == run
    assert evaluation_run_for_scores(pack_key=utk_subset["pack_key"], normalisation="cohort:1") is None
    impostors = np.sort(utk_subset["scores"][utk_subset["upper"]])
    score = float(impostors[-20])  # the 20th highest different-person score
    meaning = score_meaning(score=score, run=run)
    expected = _direct_fmr(utk_subset, max(t for t in GRID if t <= score))
    assert meaning.fmr == pytest.approx(expected)
    assert f"about 1 in {round(1 / expected):,}"[:11] in meaning.text
    assert "UTKFace adults (test subset) (research data set)" in meaning.text
    assert "not a probability" in meaning.text
    top = score_meaning(score=float(impostors[-1]) + 0.01, run=run)
    assert top.fmr == 0 and f"none of the {len(impostors):,} different-person pairs" in top.text

    # With several data sets, a search relies on the one with the highest false-match rate at its threshold.
    women = _only(utk_subset, "sex", "F")
    other = _store(women, name="UTKFace adult women (test subset)")
    assert evaluation_run_for_scores(pack_key=utk_subset["pack_key"]) == other  # the newest
    higher = other if _direct_fmr(women, 0.30) > _direct_fmr(utk_subset, 0.30) else run
    assert evaluation_run_for_scores(pack_key=utk_subset["pack_key"], threshold=0.30) == higher


def test_accuracy_page_annex_and_curves_for_admins_and_supervisors(
    utk_subset: dict[str, Any], settings: Any, tmp_path: Path
) -> None:
    settings.DATA_DIR = tmp_path
    run = _store(utk_subset)
    admin, supervisor, investigator = make_user("ada", role=ADMIN), make_user("sue", role=SUPERVISOR), make_user("ivo")
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("search:manage-accuracy"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "UTKFace adults (test subset) (research data set)" in html and "Research data set" in html
    at = run_rates_at(run, 0.30)
    female = next(g for g in at["groups"] if g.attribute == "sex" and g.value == "F")
    assert f"{female.rates.fmr * 100:.3g}%" in html
    assert "What these figures do and do not show" in html
    viewed = AuditEvent.objects.get(action="accuracy.viewed")
    assert viewed.detail["evaluation_runs"] == [run.pk] and viewed.detail["threshold"] == 0.30

    image = client.get(reverse("search:manage-accuracy-curve", args=[run.pk, "race"]))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert list((tmp_path / "cache" / "accuracy").glob(f"run-{run.pk}-*.png"))  # drawn once, cached
    assert client.get(reverse("search:manage-accuracy-curve", args=[run.pk, "shoe"])).status_code == 404

    annex = client.get(reverse("search:manage-accuracy-annex"))
    assert annex.status_code == 200 and annex.content.startswith(b"%PDF")
    downloaded = AuditEvent.objects.get(action="accuracy.annex_downloaded")
    assert downloaded.detail["annex_sha256"] == hashlib.sha256(annex.content).hexdigest()

    client.force_login(supervisor)
    assert client.get(reverse("search:manage-accuracy")).status_code == 200
    assert client.get(reverse("search:manage-thresholds")).status_code == 403
    client.force_login(investigator)
    assert client.get(reverse("search:manage-accuracy")).status_code == 403
    assert client.get(reverse("search:manage-accuracy-annex")).status_code == 403


def test_gallery_threshold_previewed_then_saved_with_its_evidence(utk_subset: dict[str, Any]) -> None:
    pack_key = utk_subset["pack_key"]
    gallery = Gallery.objects.create(name="Missing persons", kind="missing_persons")
    client = Client()
    client.force_login(make_user("ada", role=ADMIN))
    url = reverse("search:manage-thresholds")
    # Without a stored evaluation a threshold may still be set, and the preview says its rates are unknown.
    unknown = client.get(url, {"pack": pack_key, "target": "system", "value": "0.5"})
    assert "No evaluation of this pack is stored" in unknown.content.decode()
    run = _store(utk_subset)
    preview = client.get(url, {"pack": pack_key, "target": str(gallery.pk), "value": "0.36"})
    assert preview.status_code == 200
    html = preview.content.decode()
    at = run_rates_at(run, 0.36)
    for group in at["groups"]:
        assert f"{group.attribute} {group.value}" in html
    assert "Save this threshold" in html and "0.300 → 0.360" in html
    assert AuditEvent.objects.filter(action="accuracy.viewed", detail__page="thresholds").exists()

    set_url = reverse("search:manage-threshold-set") + f"?pack={pack_key}"
    refused = client.post(set_url, {"target": str(gallery.pk), "value": "0.36", "reason": ""})
    assert refused.status_code == 302
    gallery.refresh_from_db()
    assert gallery.default_threshold is None

    client.post(set_url, {"target": str(gallery.pk), "value": "0.36", "reason": "Children's faces: FMR 5% at 0.30"})
    gallery.refresh_from_db()
    assert gallery.default_threshold == 0.36 and gallery.default_threshold_pack_key == pack_key
    event = AuditEvent.objects.get(action="gallery.threshold_set")
    assert event.detail["before"]["threshold"] is None and event.detail["after"] == 0.36
    (evidence,) = event.detail["evidence"]
    assert evidence["evaluation_run"] == run.pk and evidence["research"] is True
    assert evidence["groups"]["race=Indian"]["fmr"] == pytest.approx(_direct_fmr(utk_subset, 0.36, "race", "Indian"))

    client.post(set_url, {"target": "system", "value": "0.33", "reason": "Recalibrated on the stored runs"})
    assert PackThreshold.objects.get(pack_key=pack_key).threshold == 0.33
    system_event = AuditEvent.objects.get(action="threshold.system_set")
    assert system_event.detail["before"] == 0.30 and system_event.detail["before_source"] == "setting"
    # The gallery's own (higher) default wins for a search of it; the system default for any other gallery.
    other = Gallery.objects.create(name="Custody", kind="custody")
    assert threshold_for_search(pack_key=pack_key, galleries=[gallery, other]).source == "gallery"
    assert threshold_for_search(pack_key=pack_key, galleries=[other]).value == 0.33
    assert threshold_for_search(pack_key="another-pack@1", galleries=[gallery, other]).source == "setting"


def test_search_records_threshold_source_and_evaluation_and_candidates_carry_meaning(
    utk_subset: dict[str, Any],
) -> None:
    world = build_case_world()
    workbench_objects_create(world)
    face, gallery = world.extra["face"], world.extra["gallery"]
    pack_key = face.pack_key
    run = _store(utk_subset, pack_key=pack_key)
    owner = world.users["owner"]
    plain = searches.search_request(face=face, requested_by=owner, gallery_ids=[gallery.pk], justification="Robbery")
    assert (plain.threshold, plain.threshold_source, plain.evaluation_run_id) == (0.30, "setting", run.pk)
    gallery.default_threshold, gallery.default_threshold_pack_key = 0.41, pack_key
    gallery.save()
    strict = searches.search_request(face=face, requested_by=owner, gallery_ids=[gallery.pk], justification="Again")
    assert (strict.threshold, strict.threshold_source) == (0.41, Search.ThresholdSource.GALLERY)
    event = AuditEvent.objects.filter(action="search.requested").latest("seq")
    assert event.detail["threshold_source"] == "gallery" and event.detail["evaluation_run"] == run.pk

    # The finished search of the factory relied on the run: its candidate's score reads with meaning
    # everywhere (page, API, report).
    done = world.extra["search"]
    done.evaluation_run = run
    done.save(update_fields=["evaluation_run"])
    candidate = world.extra["candidate"]
    candidate.refresh_from_db()
    meaning = candidate_score_meaning(candidate)
    assert meaning.evaluation_run_id == run.pk and "different-person pairs" in meaning.text
    client = Client()
    client.force_login(owner)
    form = client.get(reverse("cases:face-search", args=[face.pk])).content.decode()
    assert "its default threshold 0.41" in form
    page = client.get(reverse("cases:search", args=[done.pk])).content.decode()
    # The list gives the score with its meaning in a few words (cases.presenters.candidate_score_phrase).
    assert escape(candidate_score_phrase(candidate)) in page and "UTKFace adults (test subset)" in page
    api = client_for(owner).get(f"/api/searches/{done.pk}/").json()
    assert api["evaluation_run"] == run.pk
    assert api["candidates"][0]["score_meaning"] == {**meaning.as_dict(), "score": candidate.score}
    report = client.get(reverse("cases:search-report", args=[done.pk]))
    assert report.status_code == 200 and report.content.startswith(b"%PDF")


def test_admin_queues_an_evaluation_on_a_server_folder_and_follows_its_progress(
    faces_dir: Path, settings: Any, tmp_path: Path, run_on_commit: Any
) -> None:
    folder = tmp_path / "labelled"
    folder.mkdir()
    source = faces_dir / "utkface"
    with (source / "labels.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["age"]) >= 18][:6]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "age", "sex", "race"])
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        shutil.copyfile(source / "images" / row["file"], folder / row["file"])  # a link out of the root is refused
    settings.RFR_EVALUATION_ROOTS = [tmp_path.resolve()]
    client = Client()
    client.force_login(make_user("ada", role=ADMIN))
    form = {"kind": "demographics", "folder": "labelled", "labels": "labels.csv", "dataset_name": "Six adults"}
    form["research"] = "on"
    outside = client.post(reverse("search:manage-accuracy-run-new"), {**form, "folder": str(faces_dir)})
    assert outside.status_code == 302 and not EvaluationRun.objects.exists()
    response = run_on_commit(lambda: client.post(reverse("search:manage-accuracy-run-new"), form))
    run = EvaluationRun.objects.get()
    assert response.url == reverse("search:manage-accuracy-run", args=[run.pk])
    status = client.get(reverse("search:manage-accuracy-run-status", args=[run.pk])).json()
    assert status["status"] == "done" and status["progress"] == 100 and status["total"] == len(rows)
    page = client.get(reverse("search:manage-accuracy-run", args=[run.pk])).content.decode()
    assert "Six adults (research data set)" in page and "See the figures" in page
    assert "Six adults (research data set)" in client.get(reverse("search:manage-accuracy")).content.decode()
    assert AuditEvent.objects.filter(action="evaluation.run_queued", detail__run_id=run.pk).exists()
