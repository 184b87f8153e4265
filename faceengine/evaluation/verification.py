"""1:1 verification evaluation over a pairs CSV (`fold,left,right,same`), LFW protocol.

A failure to enrol (no face found) is never dropped: the pair is scored -1, i.e. a non-match.
Accuracy uses, for each fold, the threshold that maximises accuracy on the other folds.
With a `Degradation` (`--degrade`), the right image of each pair is degraded (faceengine.evaluation.degrade)
before its face is found; the left image stays clean. A right image whose clean copy has no face cannot be
degraded to a given size and counts as a failure to enrol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceengine.engine import FaceEngine
from faceengine.errors import ImageRejected
from faceengine.evaluation.datasets import group_of, primary_template, read_groups, read_pairs
from faceengine.evaluation.degrade import Degradation, degrade_image, inter_eye_distance
from faceengine.evaluation.metrics import best_threshold, equal_error_rate, group_rates, tar_at_far
from faceengine.imageio import decode_image_file
from faceengine.normalisation import Normaliser

FTE_SCORE = -1.0


def compute_templates(
    engine: FaceEngine,
    images_dir: Path,
    files: list[str],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """One template per image (its primary face); None where no face was found or the file was rejected."""
    templates: dict[str, np.ndarray | None] = {}
    failures: list[str] = []
    for index, name in enumerate(files):
        templates[name], failure = primary_template(engine, images_dir / name)
        if failure is not None:
            failures.append(f"{name}: {failure}")
        if progress:
            progress(index + 1, len(files))
    return templates, failures


def degraded_template(engine: FaceEngine, path: Path, degradation: Degradation) -> tuple[np.ndarray | None, str | None]:
    """(template of the primary face of the degraded image, None), or (None, why not)."""
    try:
        image = decode_image_file(path)
    except (ImageRejected, OSError) as exc:
        return None, str(getattr(exc, "message", exc))
    clean = engine.primary_face(image)
    if clean is None:
        return None, "no face found in the clean image to degrade"
    degraded = degrade_image(image, face_ied=inter_eye_distance(clean.landmarks), degradation=degradation)
    face = engine.primary_face(degraded)
    if face is None:
        return None, f"no face found after degrading ({degradation.label()})"
    return face.template, None


def compute_degraded_templates(
    engine: FaceEngine,
    images_dir: Path,
    files: list[str],
    degradation: Degradation,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """As compute_templates, on each image degraded as `degradation` says."""
    templates: dict[str, np.ndarray | None] = {}
    failures: list[str] = []
    for index, name in enumerate(files):
        templates[name], failure = degraded_template(engine, images_dir / name, degradation)
        if failure is not None:
            failures.append(f"{name} (degraded): {failure}")
        if progress:
            progress(index + 1, len(files))
    return templates, failures


def pair_scores(
    pairs: list[dict[str, str]],
    templates: dict[str, np.ndarray | None],
    normaliser: Normaliser | None = None,
    right_templates: dict[str, np.ndarray | None] | None = None,
) -> np.ndarray:
    """The cosine score of each pair (normalised against the cohort with a `normaliser`); FTE_SCORE where
    either image has no template (with a normaliser: one below the lowest normalised score, as scales differ).
    Right images' templates come from `right_templates` when given (the degraded copies)."""
    rights = templates if right_templates is None else right_templates
    if normaliser is not None:
        # Left and right templates are keyed apart: a degraded right image is not its clean left copy.
        present = {("left", name): t for name, t in templates.items() if t is not None}
        present.update({("right", name): t for name, t in rights.items() if t is not None})
        keys = sorted(present)
        position = {key: i for i, key in enumerate(keys)}
        normalised = normaliser.score_matrix(np.stack([present[key] for key in keys])) if keys else None
        values = np.array(
            [
                normalised[position[("left", p["left"])], position[("right", p["right"])]]
                if normalised is not None and ("left", p["left"]) in position and ("right", p["right"]) in position
                else np.nan
                for p in pairs
            ],
            dtype=np.float64,
        )
        floor = float(np.nanmin(values)) - 1.0 if np.isfinite(values).any() else FTE_SCORE
        return np.where(np.isnan(values), min(floor, FTE_SCORE), values)
    return np.array(
        [
            float(np.dot(templates[p["left"]], rights[p["right"]]))  # type: ignore[arg-type]
            if templates[p["left"]] is not None and rights[p["right"]] is not None
            else FTE_SCORE
            for p in pairs
        ]
    )


def verification_rates(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Cross-fold accuracy, TAR at FAR 1e-2 and 1e-3, EER and the best single threshold over all pairs."""
    fold_accuracies, fold_thresholds = [], []
    for fold in sorted(set(folds)):
        held_out = folds == fold
        train = ~held_out if len(set(folds)) > 1 else held_out
        threshold = best_threshold(scores[train], same[train])
        fold_thresholds.append(threshold)
        fold_accuracies.append(float(((scores[held_out] >= threshold) == same[held_out]).mean()))
    tar2, thr2 = tar_at_far(scores, same, 1e-2)
    tar3, thr3 = tar_at_far(scores, same, 1e-3)
    eer, eer_threshold = equal_error_rate(scores, same)
    return {
        "accuracy_mean": float(np.mean(fold_accuracies)),
        "accuracy_std": float(np.std(fold_accuracies)),
        "fold_accuracies": fold_accuracies,
        "fold_thresholds": fold_thresholds,
        "operating_threshold": best_threshold(scores, same),
        "tar_at_far_1e-2": tar2,
        "threshold_at_far_1e-2": thr2,
        "tar_at_far_1e-3": tar3,
        "threshold_at_far_1e-3": thr3,
        "eer": eer,
        "eer_threshold": eer_threshold,
    }


def run_verification(
    engine: FaceEngine,
    *,
    pairs_csv: Path,
    images_dir: Path,
    group_by: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    normaliser: Normaliser | None = None,
    degradation: Degradation | None = None,
) -> dict[str, Any]:
    return verification_evaluate(
        engine,
        pairs_csv=pairs_csv,
        images_dir=images_dir,
        group_by=group_by,
        progress=progress,
        normaliser=normaliser,
        degradation=degradation,
    ).result


@dataclass(frozen=True)
class VerificationOutcome:
    """The report (`result`, the --json object) and what it was computed from, for stored curves."""

    result: dict[str, Any]
    scores: np.ndarray
    same: np.ndarray
    pair_groups: list[str]  # "" without --group-by; "A/B" for a pair across two groups


def verification_evaluate(
    engine: FaceEngine,
    *,
    pairs_csv: Path,
    images_dir: Path,
    group_by: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    normaliser: Normaliser | None = None,
    degradation: Degradation | None = None,
) -> VerificationOutcome:
    started = time.perf_counter()
    pairs = read_pairs(pairs_csv)
    groups, group_column = read_groups(group_by, images_dir) if group_by else ({}, "")
    if degradation is None:
        files = sorted({p["left"] for p in pairs} | {p["right"] for p in pairs})
        templates, failures = compute_templates(engine, images_dir, files, progress)
        right_templates = None
        fte_images = sum(1 for t in templates.values() if t is None)
    else:
        lefts, rights = sorted({p["left"] for p in pairs}), sorted({p["right"] for p in pairs})
        files = sorted(set(lefts) | set(rights))
        total = len(lefts) + len(rights)

        def right_progress(done: int, _count: int) -> None:
            if progress:
                progress(len(lefts) + done, total)

        templates, failures = compute_templates(
            engine, images_dir, lefts, (lambda done, _count: progress(done, total)) if progress else None
        )
        right_templates, right_failures = compute_degraded_templates(
            engine, images_dir, rights, degradation, right_progress
        )
        failures += right_failures
        fte_images = sum(1 for t in [*templates.values(), *right_templates.values()] if t is None)

    scores = pair_scores(pairs, templates, normaliser, right_templates)
    same = np.array([p["same"].strip() in {"1", "true", "True"} for p in pairs])
    folds = np.array([p["fold"] for p in pairs])
    rates = verification_rates(scores, same, folds)

    group_rows: list[dict[str, Any]] = []
    pair_groups: list[str] = [""] * len(pairs)
    if groups:
        pair_groups = []
        for p in pairs:
            left, right = group_of(p["left"], groups), group_of(p["right"], groups)
            pair_groups.append(left if left == right else f"{left}/{right}" if left < right else f"{right}/{left}")
        group_rows = [vars(row) for row in group_rates(scores, same, pair_groups, rates["operating_threshold"])]

    result = {
        "pairs": len(pairs),
        "images": len(files),
        "fte_images": fte_images,
        "fte_pairs": int((scores == FTE_SCORE).sum()),
        **rates,
        "seconds": round(time.perf_counter() - started, 2),
        "group_column": group_column,
        "groups": group_rows,
        "failures": failures,
        "model_pack": engine.pack.key,
        "flip_average": engine.flip_average,
        "degradation": degradation.to_dict() if degradation else None,
    }
    return VerificationOutcome(result=result, scores=scores, same=same, pair_groups=pair_groups)


def format_verification_report(result: dict[str, Any]) -> str:
    lines = [
        f"Model pack            {result['model_pack']} (flip-averaged templates: {result['flip_average']})",
        f"Pairs scored          {result['pairs']} over {result['images']} images",
        *(
            [f"Right images degraded {Degradation(**result['degradation']).label()}"]
            if result.get("degradation")
            else []
        ),
        f"Failures to enrol     {result['fte_images']} images ({result['fte_pairs']} pairs scored as non-matches)",
        f"Accuracy              {100 * result['accuracy_mean']:.2f}% ± {100 * result['accuracy_std']:.2f}"
        f"  (threshold from the other folds; per fold "
        + ", ".join(f"{100 * a:.2f}%" for a in result["fold_accuracies"])
        + ")",
        *(
            f"TAR @ FAR {far:<12}{100 * result[f'tar_at_far_{far}']:.2f}%"
            f"  (threshold {result[f'threshold_at_far_{far}']:.3f})"
            for far in ("1e-2", "1e-3")
        ),
        f"EER                   {100 * result['eer']:.2f}%  (threshold {result['eer_threshold']:.3f})",
        f"Operating threshold   {result['operating_threshold']:.3f} (best accuracy over all pairs)",
        f"Seconds               {result['seconds']:.1f}",
    ]
    if result["groups"]:
        lines.append("")
        lines.append(f"Per {result['group_column']} at the operating threshold:")
        lines.append(f"  {'group':<12} {'genuine':>8} {'impostor':>9} {'FNMR':>8} {'FMR':>8}")
        for row in result["groups"]:
            fnmr = "-" if row["fnmr"] is None else f"{100 * row['fnmr']:.2f}%"
            fmr = "-" if row["fmr"] is None else f"{100 * row['fmr']:.2f}%"
            lines.append(
                f"  {row['group']:<12} {row['genuine_pairs']:>8} {row['impostor_pairs']:>9} {fnmr:>8} {fmr:>8}"
            )
    if result["failures"]:
        lines.append("")
        lines.append("Images without a usable face:")
        lines.extend(f"  {line}" for line in result["failures"][:50])
    return "\n".join(lines)
