"""1:1 verification evaluation over a pairs CSV (`fold,left,right,same`), LFW protocol.

A failure to enrol (no face found) is never dropped: the pair is scored -1, i.e. a non-match.
Accuracy uses, for each fold, the threshold that maximises accuracy on the other folds.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faceengine.engine import FaceEngine
from faceengine.errors import ImageRejected
from faceengine.imageio import decode_image_file
from faceengine.metrics import best_threshold, equal_error_rate, group_rates, tar_at_far

FTE_SCORE = -1.0


def read_pairs(pairs_csv: Path) -> list[dict[str, str]]:
    with pairs_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"fold", "left", "right", "same"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{pairs_csv} lacks the column(s) {sorted(missing)}; expected fold,left,right,same.")
        return list(reader)


def read_groups(spec: str, images_dir: Path) -> tuple[dict[str, str], str]:
    """`CSV:COLUMN` → {key: group}. The CSV's first column is the key: an image path or an identity folder."""
    if ":" not in spec:
        raise ValueError(f"--group-by {spec!r} must look like CSV:COLUMN, e.g. lfw/sex.csv:sex.")
    path_text, column = spec.rsplit(":", 1)
    path = Path(path_text)
    candidates = [path] + [base / path for base in (images_dir, *images_dir.parents[:3])]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ValueError(f"Group file {path_text} not found (looked in the working folder and above {images_dir}).")
    with found.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if column not in fields:
            raise ValueError(f"{found} has no column {column!r}; it has {fields}.")
        key = fields[0]
        return {row[key]: (row[column] or "unknown") for row in reader}, column


def group_of(image: str, groups: dict[str, str]) -> str:
    for key in (image, image.split("/")[0], Path(image).stem):
        if key in groups:
            return groups[key]
    return "unknown"


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
        try:
            face = engine.primary_face(decode_image_file(images_dir / name))
        except (ImageRejected, FileNotFoundError) as exc:
            face = None
            failures.append(f"{name}: {getattr(exc, 'message', exc)}")
        else:
            if face is None:
                failures.append(f"{name}: no face found")
        templates[name] = None if face is None else face.template
        if progress:
            progress(index + 1, len(files))
    return templates, failures


def run_verification(
    engine: FaceEngine,
    *,
    pairs_csv: Path,
    images_dir: Path,
    group_by: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    pairs = read_pairs(pairs_csv)
    groups, group_column = read_groups(group_by, images_dir) if group_by else ({}, "")
    files = sorted({p["left"] for p in pairs} | {p["right"] for p in pairs})
    templates, failures = compute_templates(engine, images_dir, files, progress)

    scores = np.array(
        [
            float(np.dot(templates[p["left"]], templates[p["right"]]))  # type: ignore[arg-type]
            if templates[p["left"]] is not None and templates[p["right"]] is not None
            else FTE_SCORE
            for p in pairs
        ]
    )
    same = np.array([p["same"].strip() in {"1", "true", "True"} for p in pairs])
    folds = np.array([p["fold"] for p in pairs])

    fold_accuracies, fold_thresholds = [], []
    for fold in sorted(set(folds)):
        held_out = folds == fold
        train = ~held_out if len(set(folds)) > 1 else held_out
        threshold = best_threshold(scores[train], same[train])
        fold_thresholds.append(threshold)
        fold_accuracies.append(float(((scores[held_out] >= threshold) == same[held_out]).mean()))
    operating_threshold = best_threshold(scores, same)
    tar2, thr2 = tar_at_far(scores, same, 1e-2)
    tar3, thr3 = tar_at_far(scores, same, 1e-3)
    eer, eer_threshold = equal_error_rate(scores, same)

    group_rows: list[dict[str, Any]] = []
    if groups:
        pair_groups = []
        for p in pairs:
            left, right = group_of(p["left"], groups), group_of(p["right"], groups)
            pair_groups.append(left if left == right else f"{left}/{right}" if left < right else f"{right}/{left}")
        group_rows = [vars(row) for row in group_rates(scores, same, pair_groups, operating_threshold)]

    return {
        "pairs": len(pairs),
        "images": len(files),
        "fte_images": sum(1 for t in templates.values() if t is None),
        "fte_pairs": int((scores == FTE_SCORE).sum()),
        "accuracy_mean": float(np.mean(fold_accuracies)),
        "accuracy_std": float(np.std(fold_accuracies)),
        "fold_accuracies": fold_accuracies,
        "fold_thresholds": fold_thresholds,
        "operating_threshold": operating_threshold,
        "tar_at_far_1e-2": tar2,
        "threshold_at_far_1e-2": thr2,
        "tar_at_far_1e-3": tar3,
        "threshold_at_far_1e-3": thr3,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "seconds": round(time.perf_counter() - started, 2),
        "group_column": group_column,
        "groups": group_rows,
        "failures": failures,
        "model_pack": engine.pack.key,
        "flip_average": engine.flip_average,
    }


def format_verification_report(result: dict[str, Any]) -> str:
    lines = [
        f"Model pack            {result['model_pack']} (flip-averaged templates: {result['flip_average']})",
        f"Pairs scored          {result['pairs']} over {result['images']} images",
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
