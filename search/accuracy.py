"""What a score and a threshold mean, read from the evaluation runs stored for a model pack (EvaluationRun,
written by `manage.py evaluate … --store` or a run queued from the page, search.evaluations).

Reads only: the error rates of a run at any threshold (its curves hold false-match and false-non-match rates on a
fine grid of thresholds, overall and per group), the run a search relies on for a pack and score normalisation,
and a score's meaning in words ("about 1 in 10,000 different-person pairs in <data set> scored this high"). It is
never a probability that the candidate is the person: it says how often people who are NOT the same person
scored this high on a named data set. Research data sets are named as such wherever a figure is shown.

The accuracy page, the thresholds page, the PDF annex (search.accuracy_report), the candidate lists, the API and
the search report all read from here, so they never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from faceengine import ModelPackError, load_pack
from rfr.engine import active_pack_dir, active_pack_name
from search.evaluations import evaluation_runs_for_pack
from search.models import EvaluationRun

OVERALL = "overall"


def active_pack_key() -> str:
    """The key of the active pack (its manifest, read without hashing the files), or its folder name when the
    manifest cannot be read."""
    try:
        return load_pack(active_pack_dir(), verify=False).key
    except ModelPackError:
        return active_pack_name()


@dataclass(frozen=True)
class Rates:
    """Error rates at one threshold, read from a curve (None where the run could not measure them)."""

    threshold: float
    fmr: float | None
    fnmr: float | None


def curve_rates_at(curve: list[list[Any]] | None, threshold: float) -> Rates | None:
    """The rates at `threshold`: the curve's point at the largest grid threshold not above it, so the false-match
    rate read is never lower than the true one between grid points (it only falls as the threshold rises)."""
    if not curve:
        return None
    points = sorted(curve, key=lambda p: float(p[0]))
    chosen = points[0]
    for point in points:
        if float(point[0]) <= threshold + 1e-12:
            chosen = point
        else:
            break
    fmr = None if chosen[1] is None else float(chosen[1])
    fnmr = None if len(chosen) < 3 or chosen[2] is None else float(chosen[2])
    return Rates(threshold=float(threshold), fmr=fmr, fnmr=fnmr)


def _done_runs(*, pack_key: str, normalisation: str = "raw") -> list[EvaluationRun]:
    return list(evaluation_runs_for_pack(pack_key=pack_key, normalisation=normalisation, finished_only=True))


def evaluation_runs_latest_per_dataset(*, pack_key: str, normalisation: str = "raw") -> list[EvaluationRun]:
    """The newest finished run per (data set, kind) of the pack, newest first: what the accuracy page shows."""
    seen: set[tuple[str, str]] = set()
    runs = []
    for run in _done_runs(pack_key=pack_key, normalisation=normalisation):
        key = (run.dataset_name, run.kind)
        if key not in seen:
            seen.add(key)
            runs.append(run)
    return runs


def evaluation_run_for_scores(
    *, pack_key: str, normalisation: str = "raw", threshold: float | None = None
) -> EvaluationRun | None:
    """The run that gives a score of this pack (and normalisation) its meaning, among the newest finished run
    of each data set and kind that holds an overall false-match curve: with a threshold, the one with the
    highest overall false-match rate there (the most cautious reading; the newest on a tie), else the newest.
    None when the pack has no stored evaluation."""
    runs = [
        run
        for run in evaluation_runs_latest_per_dataset(pack_key=pack_key, normalisation=normalisation)
        if (run.curves or {}).get(OVERALL)
    ]
    if not runs or threshold is None:
        return runs[0] if runs else None

    def fmr_at(run: EvaluationRun) -> float:
        rates = curve_rates_at(run.curves[OVERALL], threshold)
        return rates.fmr if rates is not None and rates.fmr is not None else -1.0

    return max(runs, key=fmr_at)  # max() keeps the first (newest) of equal ones


def evaluation_packs() -> list[str]:
    """The pack keys that have a finished evaluation run."""
    return sorted(
        set(EvaluationRun.objects.filter(status=EvaluationRun.Status.DONE).values_list("pack_key", flat=True))
    )


def dataset_label(run: EvaluationRun) -> str:
    """The data set's name as every page shows it, research data marked as such."""
    if not run.dataset_is_research or "research data" in run.dataset_name.lower():
        return run.dataset_name  # a name that already says so is not told twice
    return f"{run.dataset_name} (research data set)"


def one_in(rate: float) -> str:
    """1e-4 -> "1 in 10,000"; rounded to two significant figures, which is all such a figure can carry."""
    n = 1.0 / rate
    if n < 10:
        return f"1 in {n:.1f}".replace(".0 ", " ")
    digits = math.floor(math.log10(n)) - 1
    return f"1 in {int(round(n, -digits)):,}"


def impostor_pairs(run: EvaluationRun) -> int | None:
    """How many different-person pairs the run compared overall, where its figures say so."""
    overall = (run.figures or {}).get(OVERALL)
    value = overall.get("impostor_pairs") if isinstance(overall, dict) else None
    return int(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class ScoreMeaning:
    score: float
    fmr: float | None
    text: str
    evaluation_run_id: int | None
    dataset: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "estimated_false_match_rate": self.fmr,
            "text": self.text,
            "evaluation_run": self.evaluation_run_id,
            "dataset": self.dataset,
        }


NO_EVALUATION_TEXT = "no stored evaluation for this pack, so this score has no measured meaning"
NOT_A_PROBABILITY = "not a probability that this is the same person"


def score_meaning(*, score: float, run: EvaluationRun | None) -> ScoreMeaning:
    """A score in words, from the run's overall false-match curve; never a probability of identity."""
    if run is None:
        return ScoreMeaning(
            score=score, fmr=None, text=f"score {score:.3f}: {NO_EVALUATION_TEXT}", evaluation_run_id=None, dataset=""
        )
    rates = curve_rates_at((run.curves or {}).get(OVERALL), score)
    data = dataset_label(run)
    if rates is None or rates.fmr is None:
        text = f"score {score:.3f}: the stored evaluation on {data} has no false-match figures"
        return ScoreMeaning(score=score, fmr=None, text=text, evaluation_run_id=run.pk, dataset=data)
    if rates.fmr <= 0:
        pairs = impostor_pairs(run)
        among = f"none of the {pairs:,} different-person pairs" if pairs else "none of the different-person pairs"
        text = f"score {score:.3f}: {among} in {data} scored this high ({NOT_A_PROBABILITY})"
    else:
        text = (
            f"score {score:.3f}: about {one_in(rates.fmr)} different-person pairs in {data} scored this high"
            f" ({NOT_A_PROBABILITY})"
        )
    return ScoreMeaning(score=score, fmr=rates.fmr, text=text, evaluation_run_id=run.pk, dataset=data)


# -- a run's figures at a threshold -------------------------------------------------------------------------
# As `evaluate demographics` does for its ratios (faceengine.evaluation.demographics): groups with fewer
# impostor pairs than this, and the "unknown" group (no label), are shown but left out of a ratio, and each
# group's rate is floored at one false match in its pairs, so a group with none gives a finite ratio marked
# "floored".
MIN_RATIO_PAIRS = 100


@dataclass(frozen=True)
class GroupRates:
    attribute: str
    value: str
    n: int | None  # images in the group
    fte: int | None  # of which failed to enrol
    pairs: int | None  # impostor pairs within the group
    rates: Rates | None


def _group_figures(run: EvaluationRun) -> dict[str, dict[str, dict[str, Any]]]:
    groups = (run.figures or {}).get("groups") or {}
    return groups if isinstance(groups, dict) else {}


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _ratio(groups: list[GroupRates]) -> dict[str, Any] | None:
    rated = [
        g
        for g in groups
        if g.rates is not None
        and g.rates.fmr is not None
        and (g.pairs is None or g.pairs >= MIN_RATIO_PAIRS)
        and g.value != "unknown"
    ]
    if len(rated) < 2:
        return None

    def floored(g: GroupRates) -> float:
        fmr = g.rates.fmr if g.rates is not None and g.rates.fmr is not None else 0.0
        return max(fmr, 1.0 / g.pairs) if g.pairs else fmr

    if not any(g.rates.fmr for g in rated if g.rates is not None):
        return None  # no group had a false match at this threshold: there is nothing to compare
    high = max(rated, key=floored)
    low = min(rated, key=floored)
    return {
        "highest": high.value,
        "highest_fmr": high.rates.fmr if high.rates else None,
        "lowest": low.value,
        "lowest_fmr": low.rates.fmr if low.rates else None,
        "ratio": floored(high) / floored(low) if floored(low) > 0 else None,
        "floored": floored(low) != (low.rates.fmr if low.rates else None),
    }


# The order groups are shown in (stored JSON keeps no order): attributes as `evaluate demographics` lists them,
# age bands youngest first, other values alphabetically with catch-all groups last.
ATTRIBUTE_ORDER = ("sex", "race", "age")
AGE_BAND_ORDER = ("under 18", "18-40", "over 40")
LAST_VALUES = ("other", "unknown")


def group_key_order(key: str) -> tuple[int, str, int, str]:
    """Sort key of an "attribute=value" curve key."""
    attribute, _, value = key.partition("=")
    a = ATTRIBUTE_ORDER.index(attribute) if attribute in ATTRIBUTE_ORDER else len(ATTRIBUTE_ORDER)
    if attribute == "age" and value in AGE_BAND_ORDER:
        v = AGE_BAND_ORDER.index(value)
    else:
        v = len(AGE_BAND_ORDER) + (1 if value.lower() in LAST_VALUES else 0)
    return a, attribute, v, value


def run_rates_at(run: EvaluationRun, threshold: float) -> dict[str, Any]:
    """Overall and per-group rates of the run at `threshold`, and per attribute the ratio of the highest group
    false-match rate to the lowest (the rule of MIN_RATIO_PAIRS above)."""
    curves = run.curves or {}
    figures = _group_figures(run)
    groups: list[GroupRates] = []
    for key in sorted((k for k in curves if k != OVERALL and "=" in k), key=group_key_order):
        attribute, value = key.split("=", 1)
        stats = (figures.get(attribute) or {}).get(value) or {}
        groups.append(
            GroupRates(
                attribute=attribute,
                value=value,
                n=_count(stats.get("n")),
                fte=_count(stats.get("fte")),
                pairs=_count(stats.get("impostor_pairs")),
                rates=curve_rates_at(curves[key], threshold),
            )
        )
    ratios: dict[str, dict[str, Any]] = {}
    for attribute in dict.fromkeys(g.attribute for g in groups):
        ratio = _ratio([g for g in groups if g.attribute == attribute])
        if ratio is not None:
            ratios[attribute] = ratio
    return {
        "threshold": threshold,
        "overall": curve_rates_at(curves.get(OVERALL), threshold),
        "groups": groups,
        "ratios": ratios,
    }


def run_summary(run: EvaluationRun) -> dict[str, Any]:
    """Who ran it, on what, when: the lines shown above a run's figures on the pages and in the annex."""
    return {
        "id": run.pk,
        "kind": run.get_kind_display(),
        "dataset": dataset_label(run),
        "research": run.dataset_is_research,
        "labels_sha256": run.labels_sha256,
        "source": run.source,
        "normalisation": run.normalisation,
        "run_by": run.run_by_label or (run.run_by.get_username() if run.run_by else ""),
        "finished_at": run.finished_at or run.created_at,
        "images": (run.figures or {}).get("images"),
        "fte": (run.figures or {}).get("fte"),
        "pairs": impostor_pairs(run),
    }


def threshold_evidence(*, pack_key: str, threshold: float, normalisation: str = "raw") -> list[dict[str, Any]]:
    """For each stored run of the pack (newest per data set): its summary and its rates at `threshold`, as
    plain numbers (stored with a threshold change's audit event and shown before it is saved)."""
    evidence = []
    for run in evaluation_runs_latest_per_dataset(pack_key=pack_key, normalisation=normalisation):
        at = run_rates_at(run, threshold)
        overall: Rates | None = at["overall"]
        evidence.append(
            {
                "run": run,
                "summary": run_summary(run),
                "at": at,
                "record": {
                    "evaluation_run": run.pk,
                    "dataset": run.dataset_name,
                    "research": run.dataset_is_research,
                    "overall": {"fmr": overall.fmr, "fnmr": overall.fnmr} if overall else None,
                    "groups": {
                        f"{g.attribute}={g.value}": {"fmr": g.rates.fmr, "fnmr": g.rates.fnmr}
                        for g in at["groups"]
                        if g.rates is not None
                    },
                    "ratios": {a: r["ratio"] for a, r in at["ratios"].items()},
                },
            }
        )
    return evidence
