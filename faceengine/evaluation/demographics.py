"""Demographic differentials (`manage.py evaluate demographics`): false matches by sex, race and age band.

Protocol, for a folder of face images and a labels CSV `file,age,sex,race[,identity]` (UTKFace's layout;
`gender` and `ethnicity` are read where `sex` and `race` are absent):

* Each image's template is that of its primary face; an image without one is a failure to enrol (FTE),
  counted per group. FTE images take no part in impostor pairs (they cannot false-match, and counting them
  as non-matches would flatter the FMR); in genuine pairs (same `identity`) they count as misses.
* Impostor pairs: every pair of two different enrolled images, unless `identity` is given and equal (then
  the pair is genuine). Without `identity` every pair counts as impostor: a data set such as UTKFace has no
  identity labels, so the odd repeated person inflates the FMR a little.
* Overall FMR is over all impostor pairs. A group's FMR (sex, race, age band: under 18, 18-40, over 40) is
  over the impostor pairs whose two images are both in that group: FMR at a threshold t is the fraction of
  those pairs scoring t or more. FNMR (where identity is given) likewise over the group's genuine pairs.
* Thresholds: `operating` (given, rfr's default 0.30), `fmr_1e-3` and `fmr_1e-4`: the lowest threshold
  on a 0.0001 grid at which the overall FMR is at most 1e-3 (1e-4).
* Ratio per attribute and threshold: the highest group FMR over the lowest. A group with no false match at
  all would make the ratio infinite, so each group's FMR is floored at one false match in its pairs
  (1/pairs) for the ratio, and the ratio says `floored`. Groups with fewer than `MIN_RATIO_PAIRS`
  impostor pairs (e.g. a group of a handful of faces) and the `unknown` group (no label) are shown but
  left out of the ratio. A file listed twice counts once (its first row).
* Curves: per group, [threshold, FMR, FNMR or None] every 0.0025 from -0.2 to 1.0 (DET points).

Scores are counted in 0.0001-wide bins, row block by row block, so memory stays flat for large sets and every
count is exact at the grid's thresholds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceengine.engine import FaceEngine
from faceengine.evaluation.datasets import primary_template, read_table
from faceengine.imageio import ImageLimits
from faceengine.normalisation import Normaliser

BIN = 1e-4
BINS = 20001  # scores -1.0 .. 1.0
CURVE_START, CURVE_STOP, CURVE_STEP = -0.2, 1.0, 0.0025
FMR_TARGETS = {"fmr_1e-3": 1e-3, "fmr_1e-4": 1e-4}
ATTRIBUTES = ("sex", "race", "age")
AGE_BANDS = ("under 18", "18-40", "over 40")
MIN_RATIO_PAIRS = 100
BLOCK = 512
# Other names a labels file may give the columns (used only where the usual name is absent).
COLUMN_ALIASES = {"sex": "gender", "race": "ethnicity"}


def age_band(age: str) -> str:
    """`under 18`, `18-40` or `over 40`; `unknown` for a missing or unreadable age."""
    try:
        years = float(age)
    except (TypeError, ValueError):
        return "unknown"
    return AGE_BANDS[0] if years < 18 else AGE_BANDS[1] if years <= 40 else AGE_BANDS[2]


@dataclass
class LabelledImage:
    file: str
    age: float | None
    labels: dict[str, str]  # attribute -> value (sex, race, age band)
    identity: str = ""


def read_labels(
    labels_csv: Path, *, min_age: float | None = None, max_age: float | None = None
) -> tuple[list[LabelledImage], bool]:
    """The labelled images (in the CSV's order) within the age limits, and whether identities are given."""
    columns, rows = read_table(labels_csv)
    for name, alias in COLUMN_ALIASES.items():
        if name not in columns and alias in columns:
            columns.append(name)
            for row in rows:
                row[name] = row.get(alias) or ""
    missing = {"file", "age", "sex", "race"} - set(columns)
    if missing:
        raise ValueError(f"{labels_csv} lacks the column(s) {sorted(missing)}; expected file,age,sex,race[,identity].")
    has_identity = "identity" in columns
    images = []
    seen: set[str] = set()
    for row in rows:
        if not row.get("file") or row["file"] in seen:
            continue  # a file listed twice would be paired with itself: the first row counts
        seen.add(row["file"])
        try:
            age: float | None = float(row["age"])
        except (TypeError, ValueError):
            age = None
        if (min_age is not None or max_age is not None) and age is None:
            continue
        if min_age is not None and age is not None and age < min_age:
            continue
        if max_age is not None and age is not None and age > max_age:
            continue
        labels = {
            "sex": (row.get("sex") or "").strip() or "unknown",
            "race": (row.get("race") or "").strip() or "unknown",
            "age": age_band(row["age"]),
        }
        identity = (row.get("identity") or "").strip() if has_identity else ""
        images.append(LabelledImage(file=row["file"], age=age, labels=labels, identity=identity))
    return images, has_identity


@dataclass
class _Counts:
    impostor: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    genuine: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    genuine_missed: int = 0  # genuine pairs with a failure to enrol: never a match

    def rates(self, threshold: float) -> tuple[float | None, float | None]:
        """(FMR, FNMR) at a threshold on the bin grid; None where there are no pairs."""
        index = _bin_of_threshold(threshold)
        impostors = int(self.impostor.sum())
        genuines = int(self.genuine.sum()) + self.genuine_missed
        fmr = float(self.impostor[index:].sum()) / impostors if impostors else None
        fnmr = float(genuines - int(self.genuine[index:].sum())) / genuines if genuines else None
        return fmr, fnmr


def _bin_of_threshold(threshold: float) -> int:
    return int(min(max(round((threshold + 1.0) / BIN), 0), BINS))


def _bins_of_scores(scores: np.ndarray) -> np.ndarray:
    # A tiny tolerance so that a score exactly on a grid value falls in that value's bin despite float error.
    return np.clip(np.floor((scores.astype(np.float64) + 1.0) / BIN + 1e-6), 0, BINS - 1).astype(np.int64)


def _count_pairs(
    templates: np.ndarray,
    codes: dict[str, np.ndarray],
    values: dict[str, list[str]],
    identities: np.ndarray | None,
    normaliser: Normaliser | None = None,
) -> dict[str, _Counts]:
    """Score histograms of every pair of enrolled images, overall and per `attribute=value` group (scores
    normalised against the cohort with a `normaliser`)."""
    counts: dict[str, _Counts] = {"overall": _Counts()}
    for attribute, names in values.items():
        for name in names:
            counts[f"{attribute}={name}"] = _Counts()
    n = len(templates)
    stats = normaliser.statistics(templates) if normaliser is not None and n else None
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        scores = templates[start:stop] @ templates.T
        if normaliser is not None and stats is not None:
            block = type(stats)(mean=stats.mean[start:stop], std=stats.std[start:stop])
            scores = normaliser.normalise(scores, block, stats)
        rows = np.arange(start, stop)[:, None]
        upper = np.arange(n)[None, :] > rows
        if identities is not None:
            same = (identities[start:stop, None] == identities[None, :]) & (identities[start:stop, None] != "")
        else:
            same = np.zeros_like(upper)
        bins = _bins_of_scores(scores)
        for kind, kind_mask in (("impostor", upper & ~same), ("genuine", upper & same)):
            if not kind_mask.any():
                continue
            histogram = getattr(counts["overall"], kind)
            histogram += np.bincount(bins[kind_mask], minlength=BINS)
            for attribute, names in values.items():
                code = codes[attribute]
                both = kind_mask & (code[start:stop, None] == code[None, :])
                for index, name in enumerate(names):
                    mask = both & (code[start:stop, None] == index)
                    if mask.any():
                        getattr(counts[f"{attribute}={name}"], kind)[:] += np.bincount(bins[mask], minlength=BINS)
    return counts


def _threshold_at_fmr(counts: _Counts, target: float) -> float | None:
    """The lowest grid threshold at which the FMR is at most `target` (None without impostor pairs)."""
    total = int(counts.impostor.sum())
    if not total:
        return None
    at_or_above = np.cumsum(counts.impostor[::-1])[::-1]  # pairs scoring in bin i or above
    allowed = math.floor(target * total)
    index = int(np.argmax(at_or_above <= allowed)) if (at_or_above <= allowed).any() else BINS
    return round(-1.0 + index * BIN, 4)


def curve_thresholds() -> list[float]:
    steps = round((CURVE_STOP - CURVE_START) / CURVE_STEP)
    return [round(CURVE_START + i * CURVE_STEP, 4) for i in range(steps + 1)]


def _curve(counts: _Counts) -> list[list[float | None]]:
    points: list[list[float | None]] = []
    for threshold in curve_thresholds():
        fmr, fnmr = counts.rates(threshold)
        points.append([threshold, fmr, fnmr])
    return points


def _ratio(
    group_rows: dict[str, dict[str, Any]], pairs: dict[str, int], threshold_name: str
) -> tuple[float | None, dict[str, Any]]:
    """max/min group FMR at one threshold, each FMR floored at one false match in its group's pairs."""
    rates = {
        name: row["fmr"][threshold_name]
        for name, row in group_rows.items()
        if row["fmr"].get(threshold_name) is not None and pairs[name] >= MIN_RATIO_PAIRS and name != "unknown"
    }
    if len(rates) < 2:
        return None, {"highest": None, "lowest": None, "floored": False}
    floored = {name: max(rate, 1.0 / pairs[name]) for name, rate in rates.items()}
    highest = max(floored, key=lambda name: floored[name])
    lowest = min(floored, key=lambda name: floored[name])
    detail = {"highest": highest, "lowest": lowest, "floored": any(rates[n] == 0 for n in (highest, lowest))}
    return floored[highest] / floored[lowest], detail


def demographic_rates(
    images: list[LabelledImage],
    templates: dict[str, np.ndarray | None],
    *,
    operating_threshold: float,
    has_identity: bool = False,
    normaliser: Normaliser | None = None,
) -> tuple[dict[str, Any], dict[str, list[list[float | None]]]]:
    """The figures (the --json object, less run bookkeeping) and the curves, from templates already computed."""
    values = {
        attribute: sorted({image.labels[attribute] for image in images}, key=_group_order(attribute))
        for attribute in ATTRIBUTES
    }
    enrolled = [image for image in images if templates.get(image.file) is not None]
    matrix = (
        np.stack([templates[image.file] for image in enrolled]).astype(np.float32)  # type: ignore[misc]
        if enrolled
        else np.zeros((0, 1), dtype=np.float32)
    )
    codes = {
        attribute: np.array([values[attribute].index(image.labels[attribute]) for image in enrolled], dtype=np.int64)
        for attribute in ATTRIBUTES
    }
    identities = np.array([image.identity for image in enrolled]) if has_identity else None
    counts = _count_pairs(matrix, codes, values, identities, normaliser)
    if has_identity:
        _count_missed_genuine(images, templates, counts)

    thresholds: dict[str, float | None] = {"operating": operating_threshold}
    for name, target in FMR_TARGETS.items():
        thresholds[name] = _threshold_at_fmr(counts["overall"], target)
    usable = {name: value for name, value in thresholds.items() if value is not None}

    def rates_of(key: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "impostor_pairs": int(counts[key].impostor.sum()),
            "fmr": {name: counts[key].rates(value)[0] for name, value in usable.items()},
        }
        if has_identity:
            row["genuine_pairs"] = int(counts[key].genuine.sum()) + counts[key].genuine_missed
            row["fnmr"] = {name: counts[key].rates(value)[1] for name, value in usable.items()}
        return row

    groups: dict[str, dict[str, dict[str, Any]]] = {}
    ratios: dict[str, dict[str, float | None]] = {}
    ratio_detail: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in ATTRIBUTES:
        groups[attribute] = {}
        for value in values[attribute]:
            members = [image for image in images if image.labels[attribute] == value]
            groups[attribute][value] = {
                "n": len(members),
                "fte": sum(1 for image in members if templates.get(image.file) is None),
                **rates_of(f"{attribute}={value}"),
            }
        pairs = {value: row["impostor_pairs"] for value, row in groups[attribute].items()}
        ratios[attribute], ratio_detail[attribute] = {}, {}
        for name in usable:
            ratios[attribute][name], ratio_detail[attribute][name] = _ratio(groups[attribute], pairs, name)

    figures: dict[str, Any] = {
        "images": len(images),
        "fte": len(images) - len(enrolled),
        "faces": len(enrolled),
        "thresholds": thresholds,
        "overall": rates_of("overall"),
        "groups": groups,
        "ratios": ratios,
        "ratio_detail": ratio_detail,
        "has_identity": has_identity,
    }
    curves = {key: _curve(value) for key, value in counts.items() if value.impostor.any() or value.genuine.any()}
    return figures, curves


def _group_order(attribute: str) -> Callable[[str], tuple[int, str]]:
    if attribute == "age":
        return lambda value: (AGE_BANDS.index(value) if value in AGE_BANDS else len(AGE_BANDS), value)
    return lambda value: (1 if value == "unknown" else 0, value)


def _count_missed_genuine(
    images: list[LabelledImage], templates: dict[str, np.ndarray | None], counts: dict[str, _Counts]
) -> None:
    """Genuine pairs with at least one failure to enrol: misses at every threshold, per group."""
    by_identity: dict[str, list[LabelledImage]] = {}
    for image in images:
        if image.identity:
            by_identity.setdefault(image.identity, []).append(image)
    for members in by_identity.values():
        for i, left in enumerate(members):
            for right in members[i + 1 :]:
                if templates.get(left.file) is not None and templates.get(right.file) is not None:
                    continue
                counts["overall"].genuine_missed += 1
                for attribute in ATTRIBUTES:
                    if left.labels[attribute] == right.labels[attribute]:
                        counts[f"{attribute}={left.labels[attribute]}"].genuine_missed += 1


def run_demographics(
    engine: FaceEngine,
    *,
    labels_csv: Path,
    images_dir: Path,
    operating_threshold: float,
    min_age: float | None = None,
    max_age: float | None = None,
    limits: ImageLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: dict[str, tuple[np.ndarray | None, str | None]] | None = None,
    normaliser: Normaliser | None = None,
) -> tuple[dict[str, Any], dict[str, list[list[float | None]]]]:
    """Templates with the engine, then `demographic_rates`: (the --json object, the curves). `cache` (file →
    (template, failure)) lets several runs over one folder (e.g. adults, then all ages) encode each image once."""
    started = time.perf_counter()
    images, has_identity = read_labels(labels_csv, min_age=min_age, max_age=max_age)
    if not images:
        raise ValueError(f"{labels_csv} names no image within the age limits given.")
    cache = {} if cache is None else cache
    templates: dict[str, np.ndarray | None] = {}
    failures: list[str] = []
    for index, image in enumerate(images):
        if image.file not in cache:
            cache[image.file] = primary_template(engine, images_dir / image.file, limits)
        templates[image.file], failure = cache[image.file]
        if failure is not None:
            failures.append(f"{image.file}: {failure}")
        if progress:
            progress(index + 1, len(images))
    figures, curves = demographic_rates(
        images, templates, operating_threshold=operating_threshold, has_identity=has_identity, normaliser=normaliser
    )
    figures.update(
        {
            "age_filter": {"min_age": min_age, "max_age": max_age},
            "failures": failures,
            "model_pack": engine.pack.key,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return figures, curves


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if value == 0 or value >= 1e-3 else f"{100 * value:.4f}%"


def format_demographics_report(figures: dict[str, Any]) -> str:
    thresholds = {name: value for name, value in figures["thresholds"].items() if value is not None}
    names = list(thresholds)
    lines = [
        f"Model pack            {figures['model_pack']}",
        f"Images                {figures['images']} ({figures['faces']} enrolled, {figures['fte']} failures to enrol)",
        "Thresholds            " + ", ".join(f"{name} {value:.4f}" for name, value in thresholds.items()),
        "Overall FMR           " + ", ".join(f"{name} {_percent(figures['overall']['fmr'][name])}" for name in names),
    ]
    if figures["has_identity"]:
        lines.append(
            "Overall FNMR          "
            + ", ".join(f"{name} {_percent(figures['overall']['fnmr'][name])}" for name in names)
        )
    for attribute, rows in figures["groups"].items():
        lines.append("")
        header = f"  {attribute:<10} {'n':>6} {'FTE':>4} {'pairs':>9} " + " ".join(f"{'FMR ' + n:>16}" for n in names)
        lines.append(header)
        for value, row in rows.items():
            lines.append(
                f"  {value:<10} {row['n']:>6} {row['fte']:>4} {row['impostor_pairs']:>9} "
                + " ".join(f"{_percent(row['fmr'].get(n)):>16}" for n in names)
                + (
                    "   FNMR " + ", ".join(_percent(row["fnmr"].get(n)) for n in names)
                    if figures["has_identity"]
                    else ""
                )
            )
        ratio_text = []
        for name in names:
            ratio = figures["ratios"][attribute].get(name)
            detail = figures["ratio_detail"][attribute].get(name, {})
            if ratio is not None:
                floored = " (floored)" if detail.get("floored") else ""
                ratio_text.append(f"{name} {ratio:.1f}x {detail['highest']}/{detail['lowest']}{floored}")
        lines.append(f"  ratio max/min: {'; '.join(ratio_text) or '-'}")
    if figures.get("failures"):
        lines.append("")
        lines.append("Images without a usable face:")
        lines.extend(f"  {line}" for line in figures["failures"][:50])
    return "\n".join(lines)


def curves_from_pair_scores(
    scores: np.ndarray, same: np.ndarray, pair_groups: list[str] | None = None, attribute: str = "group"
) -> dict[str, list[list[float | None]]]:
    """Curves (as in `demographic_rates`) from already scored 1:1 pairs: overall, and per group over the
    pairs whose two sides share the group (`pair_groups[i]`, as `evaluate verification --group-by` builds it;
    a pair across two groups, "A/B", counts overall only)."""
    bins = _bins_of_scores(np.asarray(scores))
    same = np.asarray(same, dtype=bool)
    keys: dict[str, np.ndarray] = {"overall": np.ones(len(bins), dtype=bool)}
    if pair_groups is not None:
        labels = np.array(pair_groups)
        for group in sorted({g for g in pair_groups if g and "/" not in g}):
            keys[f"{attribute}={group}"] = labels == group
    curves = {}
    for key, mask in keys.items():
        counts = _Counts()
        counts.impostor += np.bincount(bins[mask & ~same], minlength=BINS)
        counts.genuine += np.bincount(bins[mask & same], minlength=BINS)
        curves[key] = _curve(counts)
    return curves
