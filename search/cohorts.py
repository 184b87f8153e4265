"""Score-normalisation cohorts per model pack: building one from a labelled folder, switching normalisation on
and off, and the normaliser a search or an evaluation uses.

A cohort (`ScoreCohort`) is a fixed set of face templates of people who are in no gallery and no case.
Search and evaluation scores are normalised against it (faceengine.normalisation): each comparison is
corrected for how crowded each of its two faces' neighbourhoods in the cohort are, which narrows the gap in
false-match rates between demographic groups (docs/evaluation.md, "Score normalisation").

Building (`score_cohort_build`, from `manage.py cohort build`): every image of a labelled folder
(`file,age,sex,race[,identity]`, the layout `evaluate demographics` reads) is encoded with the pack; an equal
number of members is drawn per value of one label (`balanced_by`, race by default); the labels choose the
members and describe the cohort (`composition`), and are not kept with the templates or read at search time.
The images that were not drawn calibrate the threshold: the normalised value at which their different-face
comparisons have the same false-match rate as the raw operating threshold. At most one cohort per pack is
active (`score_cohort_activate`, `score_cohort_deactivate`); searches of that pack are then normalised and
record `cohort:<pk>` as their `score_normalisation`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Max, QuerySet
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from faceengine import FaceEngine, ModelPackError, load_pack
from faceengine.evaluation.datasets import primary_template
from faceengine.evaluation.demographics import ATTRIBUTES, read_labels
from faceengine.imageio import ImageLimits
from faceengine.normalisation import (
    DEFAULT_METHOD,
    DEFAULT_TOP_K,
    METHODS,
    Normaliser,
    balanced_selection,
    threshold_at_same_fmr,
)
from rfr.engine import active_pack_dir
from rfr.errors import Conflict, InvalidInput, NotFound
from search.evaluations import evaluation_run_latest
from search.models import EvaluationRun, ScoreCohort

Actor = AbstractBaseUser | AnonymousUser | None
RAW = "raw"
DEFAULT_SIZE = 300
# Calibration compares every pair of the images left out of the cohort; beyond this many images a fixed-seed
# sample is used (pairs grow with the square).
CALIBRATION_MAX_IMAGES = 3000


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _actor_fields(actor: Actor, label: str) -> tuple[Any, str]:
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if label:
        return user, label[:150]
    return user, (user.get_username()[:150] if user is not None else "command line")


# -- building -----------------------------------------------------------------------------------------------
def score_cohort_build(
    *,
    engine: FaceEngine,
    labels_csv: Path,
    images_dir: Path,
    name: str,
    balanced_by: str = "race",
    size: int = DEFAULT_SIZE,
    top_k: int = DEFAULT_TOP_K,
    method: str = DEFAULT_METHOD,
    min_age: float | None = None,
    max_age: float | None = None,
    seed: int = 0,
    limits: ImageLimits | None = None,
    actor: Actor = None,
    created_by_label: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> ScoreCohort:
    """Encode the labelled images, draw a balanced cohort, calibrate its threshold, store it (inactive) with
    its `cohort.built` audit event. Encoding runs outside any transaction; the row and its event commit together."""
    if balanced_by not in ATTRIBUTES:
        raise InvalidInput("invalid_balance", f"Balance the cohort by one of {', '.join(ATTRIBUTES)}.")
    if method not in METHODS:
        raise InvalidInput("invalid_method", f"The normalisation method is one of {', '.join(METHODS)}.")
    if not 2 <= size <= 10000:
        raise InvalidInput("invalid_size", "A cohort has from 2 to 10,000 members.")
    try:
        images, has_identity = read_labels(Path(labels_csv), min_age=min_age, max_age=max_age)
    except (ValueError, OSError) as exc:
        raise InvalidInput("invalid_labels", str(exc)) from None
    templates: list[np.ndarray] = []
    kept = []
    for index, image in enumerate(images):
        template, _ = primary_template(engine, Path(images_dir) / image.file, limits)
        if template is not None:
            templates.append(np.asarray(template, dtype=np.float32))
            kept.append(image)
        if progress:
            progress(index + 1, len(images))
    labels = [image.labels[balanced_by] if image.labels[balanced_by] != "unknown" else "" for image in kept]
    members = balanced_selection(labels, size, seed=seed)
    if len(members) < max(2, top_k):
        raise InvalidInput(
            "cohort_too_small",
            f"Only {len(members)} labelled faces could be drawn; a cohort needs at least {max(2, top_k)}.",
        )
    matrix = np.stack([templates[i] for i in members]).astype("<f4")
    normaliser = Normaliser(matrix, method=method, top_k=top_k)

    # Calibration on the faces not drawn: same FMR as the raw operating threshold.
    member_set = set(members)
    rest = [i for i in range(len(kept)) if i not in member_set]
    if len(rest) > CALIBRATION_MAX_IMAGES:
        rest = sorted(np.random.default_rng(seed).choice(rest, CALIBRATION_MAX_IMAGES, replace=False).tolist())
    if len(rest) < 2:
        raise InvalidInput("calibration_too_small", "No faces are left outside the cohort to calibrate it with.")
    held = np.stack([templates[i] for i in rest])
    upper = np.triu_indices(len(rest), 1)
    raw = (held @ held.T)[upper]
    normalised = normaliser.score_matrix(held)[upper]
    if has_identity:
        identities = np.array([kept[i].identity for i in rest])
        different = (identities[upper[0]] != identities[upper[1]]) | (identities[upper[0]] == "")
        raw, normalised = raw[different], normalised[different]
    raw_threshold = float(settings.RFR_DEFAULT_THRESHOLD)
    threshold, fmr = threshold_at_same_fmr(raw, normalised, raw_threshold)

    composition = {
        attribute: dict(sorted(Counter(kept[i].labels[attribute] for i in members).items())) for attribute in ATTRIBUTES
    }
    pack_key = engine.pack.key
    user, label = _actor_fields(actor, created_by_label)
    with transaction.atomic():
        version = (ScoreCohort.objects.filter(pack_key=pack_key).aggregate(v=Max("version"))["v"] or 0) + 1
        cohort = ScoreCohort.objects.create(
            pack_key=pack_key,
            version=version,
            name=name[:200],
            method=method,
            top_k=top_k,
            size=len(members),
            dimension=int(matrix.shape[1]),
            templates=matrix.tobytes(),
            balanced_by=balanced_by,
            composition=composition,
            source=f"{labels_csv} ({images_dir})"[:500],
            labels_sha256=_sha256(Path(labels_csv)),
            raw_threshold=raw_threshold,
            threshold=threshold,
            calibration={
                "faces": len(rest),
                "pairs": int(raw.size),
                "fmr": fmr,
                "age_filter": {"min_age": min_age, "max_age": max_age},
                "seed": seed,
                "images_listed": len(images),
                "faces_encoded": len(kept),
            },
            created_by=user,
            created_by_label=label,
        )
        audit_event_record(
            action=AuditAction.COHORT_BUILT,
            actor=user,
            target=cohort,
            detail={
                "cohort_id": cohort.pk,
                "pack_key": pack_key,
                "version": version,
                "size": cohort.size,
                "method": method,
                "top_k": top_k,
                "balanced_by": balanced_by,
                "composition": composition,
                "labels_sha256": cohort.labels_sha256,
                "threshold": threshold,
                "raw_threshold": raw_threshold,
                "by": label,
            },
        )
    return cohort


# -- switching on and off -----------------------------------------------------------------------------------
@transaction.atomic
def score_cohort_activate(*, cohort_id: int, actor: Actor = None, request: HttpRequest | None = None) -> ScoreCohort:
    """Make this cohort the one its pack's searches are normalised against (the previous one, if any, stops)."""
    cohort = ScoreCohort.objects.select_for_update().filter(pk=cohort_id).first()
    if cohort is None:
        raise NotFound("unknown_cohort", f"No score cohort {cohort_id}.")
    if cohort.active:
        raise Conflict("cohort_already_active", f"{cohort} is already active.")
    before = score_cohort_active(pack_key=cohort.pack_key)
    ScoreCohort.objects.filter(pack_key=cohort.pack_key, active=True).update(active=False)
    cohort.active = True
    cohort.save(update_fields=["active"])
    audit_event_record(
        action=AuditAction.COHORT_ACTIVATED,
        actor=actor,
        request=request,
        target=cohort,
        detail={
            "cohort_id": cohort.pk,
            "pack_key": cohort.pack_key,
            "version": cohort.version,
            "threshold": cohort.threshold,
            "before": before.normalisation_label if before else RAW,
        },
    )
    return cohort


@transaction.atomic
def score_cohort_deactivate(*, pack_key: str, actor: Actor = None, request: HttpRequest | None = None) -> None:
    """Switch normalisation off for the pack: its searches use raw cosine scores again."""
    before = ScoreCohort.objects.select_for_update().filter(pack_key=pack_key, active=True).first()
    if before is None:
        raise Conflict("no_active_cohort", f"Pack {pack_key} has no active cohort; scores are already raw.")
    before.active = False
    before.save(update_fields=["active"])
    audit_event_record(
        action=AuditAction.COHORT_DEACTIVATED,
        actor=actor,
        request=request,
        target=before,
        detail={"cohort_id": before.pk, "pack_key": pack_key, "version": before.version},
    )


# -- reads --------------------------------------------------------------------------------------------------
def score_cohorts_list(*, pack_key: str | None = None) -> QuerySet[ScoreCohort]:
    cohorts = ScoreCohort.objects.defer("templates")
    return cohorts.filter(pack_key=pack_key) if pack_key else cohorts


def score_cohort_active(*, pack_key: str) -> ScoreCohort | None:
    return ScoreCohort.objects.defer("templates").filter(pack_key=pack_key, active=True).first()


def score_cohort_get(*, label: str) -> ScoreCohort:
    """The cohort a normalisation label (`cohort:<pk>`) names; NotFound otherwise."""
    prefix, _, number = label.partition(":")
    if prefix != "cohort" or not number.isdigit():
        raise NotFound("unknown_cohort", f"{label!r} names no cohort; expected cohort:<id>.")
    cohort = ScoreCohort.objects.filter(pk=int(number)).first()
    if cohort is None:
        raise NotFound("unknown_cohort", f"No score cohort {number}.")
    return cohort


def active_pack_key() -> str:
    """The active pack's key, read from its manifest (no model is loaded); empty if it cannot be read."""
    try:
        return load_pack(active_pack_dir()).key
    except ModelPackError:
        return ""


COMPARED_ATTRIBUTES = ("sex", "race", "age")
COMPARED_THRESHOLDS = ("operating", "fmr_1e-3")


def _percent_text(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def score_cohorts_compared(*, pack_key: str) -> list[dict[str, Any]]:
    """Raw and normalised demographic figures side by side: for each cohort of the pack with a stored
    `demographics` run under it, that run and the newest raw run on the same data set (search.evaluations)."""
    rows: list[dict[str, Any]] = []
    for cohort in score_cohorts_list(pack_key=pack_key):
        normalised = evaluation_run_latest(
            pack_key=pack_key, kind=EvaluationRun.Kind.DEMOGRAPHICS, normalisation=cohort.normalisation_label
        )
        if normalised is None:
            continue
        raw = evaluation_run_latest(
            pack_key=pack_key, kind=EvaluationRun.Kind.DEMOGRAPHICS, dataset_name=normalised.dataset_name
        )
        lines = []
        for attribute in COMPARED_ATTRIBUTES:
            raw_groups = raw.figures.get("groups", {}).get(attribute, {}) if raw else {}
            groups = normalised.figures.get("groups", {}).get(attribute, {})
            for value in groups:
                lines.append(
                    {
                        "attribute": attribute,
                        "group": value,
                        "raw": [raw_groups.get(value, {}).get("fmr", {}).get(t) for t in COMPARED_THRESHOLDS],
                        "normalised": [groups[value].get("fmr", {}).get(t) for t in COMPARED_THRESHOLDS],
                    }
                )
            lines.append(
                {
                    "attribute": attribute,
                    "group": "",
                    "raw": [
                        raw.figures.get("ratios", {}).get(attribute, {}).get(t) if raw else None
                        for t in COMPARED_THRESHOLDS
                    ],
                    "normalised": [
                        normalised.figures.get("ratios", {}).get(attribute, {}).get(t) for t in COMPARED_THRESHOLDS
                    ],
                }
            )
        for line in lines:
            show = _percent_text if line["group"] else _ratio_text
            line["cells"] = [
                show(line[side][i]) for i in range(len(COMPARED_THRESHOLDS)) for side in ("raw", "normalised")
            ]
        rows.append({"cohort": cohort, "raw_run": raw, "normalised_run": normalised, "ratios": lines})
    return rows


@lru_cache(maxsize=8)
def _normaliser_cached(cohort_id: int, method: str, top_k: int) -> Normaliser:
    # A cohort's templates never change once built (a new build is a new row), so the id is a safe key.
    cohort = ScoreCohort.objects.get(pk=cohort_id)
    return Normaliser(cohort.matrix(), method=method, top_k=top_k)


def score_cohort_normaliser(cohort: ScoreCohort) -> Normaliser:
    """The normaliser for a cohort, loaded once per process."""
    return _normaliser_cached(cohort.pk, cohort.method, cohort.top_k)
