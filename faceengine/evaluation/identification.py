"""Open-set 1:N identification evaluation (`manage.py evaluate identification`).

Protocol, for a CSV of `file,identity[,group columns]`:

* Identities are put in natural sort order (digit runs compare as numbers: "7" < "12", "a2" < "a10"), and
  each identity's files too. Every fifth identity in that order (the 5th, 10th, ...) is kept out of the
  gallery: all of its images are non-mated searches. Every other identity enrols its first file; its
  other files are mated searches.
* Each image's template is that of its primary face (faceengine.engine.primary_face_index), the image
  decoded under the upload limits given (none if None). A gallery image with no face is a failure to
  enrol (FTE): the identity is absent from the gallery and its probes stay mated searches that miss. A
  probe with no face is a miss (mated) or returns no candidate (non-mated).
* Search is exhaustive (exact inner product in numpy), in memory; no database is touched.
* Rank-k rate: fraction of mated searches whose mate is at rank ≤ k (ties with the mate count against it).
* FNIR at FPIR x (NIST FRVT 1:N): the threshold T is set from the non-mated searches' top scores so that
  a fraction of at most x of them is above T (T = the (⌊x·N⌋+1)-th highest non-mated top score); a mated
  search is a miss unless its mate is at rank 1 with a score above T. With N non-mated searches, FPIR
  below 1/N cannot be resolved: T is then the highest non-mated score (FPIR 0 on this set).
* Groups (--group-by COLUMN): the same figures over the searches whose probe row has each value of the
  column, at the global thresholds (so differences in FNIR and FPIR between groups are visible).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceengine.engine import FaceEngine
from faceengine.evaluation.datasets import IdentityRow, natural_key, primary_template, read_identities
from faceengine.evaluation.metrics import threshold_at_fpir
from faceengine.imageio import ImageLimits
from faceengine.normalisation import Normaliser

FPIR_POINTS = {"fnir_at_fpir_1e-2": 1e-2, "fnir_at_fpir_1e-3": 1e-3}


@dataclass
class _Search:
    mated: bool
    group: str
    mate_rank: float  # inf: no mate returned
    mate_score: float
    top_score: float  # -inf: no candidate


def _rates(searches: list[_Search], thresholds: dict[str, float]) -> dict[str, Any]:
    mated = [s for s in searches if s.mated]
    nonmated = [s for s in searches if not s.mated]
    result: dict[str, Any] = {
        "mated_searches": len(mated),
        "nonmated_searches": len(nonmated),
        "rank1": _fraction(sum(s.mate_rank <= 1 for s in mated), len(mated)),
        "rank10": _fraction(sum(s.mate_rank <= 10 for s in mated), len(mated)),
    }
    for key, threshold in thresholds.items():
        misses = sum(not (s.mate_rank <= 1 and s.mate_score > threshold) for s in mated)
        result[key] = _fraction(misses, len(mated))
        result[key.replace("fnir_at_", "fpir_measured_at_")] = _fraction(
            sum(s.top_score > threshold for s in nonmated), len(nonmated)
        )
    return result


def _fraction(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def run_identification(
    engine: FaceEngine,
    *,
    identities_csv: Path,
    images_dir: Path,
    group_by: str | None = None,
    limits: ImageLimits | None = None,
    normaliser: Normaliser | None = None,
) -> dict[str, Any]:
    """With a `normaliser`, every probe-to-gallery score is normalised against its cohort before ranking."""
    started = time.perf_counter()
    rows = read_identities(Path(identities_csv))
    if group_by and rows and group_by not in rows[0].groups:
        raise ValueError(f"{identities_csv}: no column {group_by!r} to group by")
    by_identity: dict[str, list[IdentityRow]] = defaultdict(list)
    for row in rows:
        by_identity[row.identity].append(row)
    identities = sorted(by_identity, key=natural_key)

    gallery_ids: list[str] = []
    gallery_vectors: list[np.ndarray] = []
    probes: list[tuple[IdentityRow, bool]] = []
    fte = 0
    for position, identity in enumerate(identities, start=1):
        files = sorted(by_identity[identity], key=lambda r: natural_key(r.file))
        if position % 5 == 0:
            probes.extend((row, False) for row in files)
            continue
        template, _ = primary_template(engine, Path(images_dir) / files[0].file, limits)
        if template is None:
            fte += 1
        else:
            gallery_ids.append(identity)
            gallery_vectors.append(template)
        probes.extend((row, True) for row in files[1:])

    matrix = np.stack(gallery_vectors) if gallery_vectors else np.zeros((0, 1), np.float32)
    position_of = {identity: i for i, identity in enumerate(gallery_ids)}
    gallery_stats = normaliser.statistics(matrix) if normaliser is not None and gallery_ids else None
    searches: list[_Search] = []
    for row, mated in probes:
        group = row.groups.get(group_by, "") if group_by else ""
        template, _ = primary_template(engine, Path(images_dir) / row.file, limits)
        if template is None or not len(gallery_ids):
            searches.append(_Search(mated, group, math.inf, -math.inf, -math.inf))
            continue
        scores = matrix @ template
        if normaliser is not None and gallery_stats is not None:
            scores = normaliser.normalise(scores[None, :], normaliser.statistics(template), gallery_stats)[0]
        top = float(scores.max())
        mate = position_of.get(row.identity) if mated else None
        if mate is None:
            searches.append(_Search(mated, group, math.inf, -math.inf, top))
            continue
        mate_score = float(scores[mate])
        # Ties count against the mate: a rank that depends on enrolment order would not be reproducible.
        rank = int(np.sum(scores >= mate_score))
        searches.append(_Search(mated, group, float(rank), mate_score, top))

    nonmated_tops = [s.top_score for s in searches if not s.mated]
    thresholds = (
        {key: threshold_at_fpir(nonmated_tops, fpir) for key, fpir in FPIR_POINTS.items()} if nonmated_tops else {}
    )
    overall = _rates(searches, thresholds)
    result: dict[str, Any] = {
        "gallery_size": len(gallery_ids),
        "mated_searches": overall["mated_searches"],
        "nonmated_searches": overall["nonmated_searches"],
        "rank1": overall["rank1"],
        "rank10": overall["rank10"],
        "fnir_at_fpir_1e-2": overall.get("fnir_at_fpir_1e-2"),
        "fnir_at_fpir_1e-3": overall.get("fnir_at_fpir_1e-3"),
        "fte": fte,
        "seconds": round(time.perf_counter() - started, 1),
        "groups": {},
    }
    if group_by:
        grouped: dict[str, list[_Search]] = defaultdict(list)
        for search in searches:
            grouped[search.group].append(search)
        result["groups"] = {group or "(blank)": _rates(items, thresholds) for group, items in sorted(grouped.items())}
    return result


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def format_identification_report(result: dict[str, Any]) -> str:
    lines = [
        "Open-set identification (exhaustive search; see faceengine/evaluation/identification.py for the protocol)",
        f"  gallery size            {result['gallery_size']}  (failures to enrol: {result['fte']})",
        f"  mated searches          {result['mated_searches']}",
        f"  non-mated searches      {result['nonmated_searches']}",
        f"  rank-1                  {_percent(result['rank1'])}",
        f"  rank-10                 {_percent(result['rank10'])}",
        f"  FNIR at FPIR 0.01       {_percent(result['fnir_at_fpir_1e-2'])}",
        f"  FNIR at FPIR 0.001      {_percent(result['fnir_at_fpir_1e-3'])}",
        f"  seconds                 {result['seconds']}",
    ]
    if result.get("groups"):
        lines.append("")
        lines.append(
            f"  {'group':<12} {'mated':>6} {'non-m':>6} {'rank-1':>7} {'rank-10':>8} "
            f"{'FNIR@1e-2':>10} {'FPIR@1e-2':>10}"
        )
        for group, figures in result["groups"].items():
            lines.append(
                f"  {group:<12} {figures['mated_searches']:>6} {figures['nonmated_searches']:>6} "
                f"{_percent(figures['rank1']):>7} {_percent(figures['rank10']):>8} "
                f"{_percent(figures.get('fnir_at_fpir_1e-2')):>10} "
                f"{_percent(figures.get('fpir_measured_at_fpir_1e-2')):>10}"
            )
    return "\n".join(lines)
