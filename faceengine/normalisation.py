"""Score normalisation against a reference cohort: pure numpy, no labels at scoring time.

A raw cosine score between two templates depends on where each template sits in the embedding space: faces of
a group the network saw little of crowd together, so different people of that group score higher with each
other, and a single threshold lets through more false matches for them. Normalising each comparison by how
similar each of its two templates is to a reference cohort of other people's faces takes out much of that.

Two methods are offered; both look only at the templates being compared and the cohort's templates:

* ``csls`` (cross-domain similarity local scaling, Conneau et al. 2018): ``2·s − m(a) − m(b)``, where ``m(x)``
  is the mean cosine of ``x`` to its ``k`` most similar cohort members. The default, measured in
  docs/evaluation.md ("Score normalisation").
* ``asnorm`` (adaptive symmetric score normalisation): ``½·((s − μ(a))/σ(a) + (s − μ(b))/σ(b))`` with ``μ``, ``σ``
  the mean and standard deviation of the ``k`` best cohort scores.

The scale of a normalised score is not the cosine scale, so a normalised search needs its own threshold:
`threshold_at_same_fmr` finds the normalised value at which a set of impostor comparisons has the same false
match rate as the raw threshold.

Which faces make up the cohort matters as much as the method: `balanced_selection` picks an equal number of
members from each value of a label (e.g. race), using the labels only to choose the members.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("csls", "asnorm")
DEFAULT_METHOD = "csls"
DEFAULT_TOP_K = 10
_STD_FLOOR = 1e-6
# A cohort member compared with its own template (the same image in the cohort and in a gallery or an
# evaluation set) is left out of that template's statistics: it would otherwise count itself as a neighbour.
SELF_MATCH = 0.9999
_LEFT_OUT = -2.0  # below any cosine, so never among the k best while k others remain


@dataclass(frozen=True)
class CohortStatistics:
    """Per template: mean and standard deviation of its `top_k` best cosine scores against the cohort."""

    mean: np.ndarray
    std: np.ndarray


class Normaliser:
    """Normalises cosine scores against a fixed cohort (rows: unit-length templates of the same pack)."""

    def __init__(self, cohort: np.ndarray, *, method: str = DEFAULT_METHOD, top_k: int = DEFAULT_TOP_K) -> None:
        cohort = np.asarray(cohort, dtype=np.float32)
        if cohort.ndim != 2 or cohort.shape[0] < 2:
            raise ValueError("A cohort needs at least two templates (rows).")
        if method not in METHODS:
            raise ValueError(f"Unknown normalisation method {method!r}; expected one of {METHODS}.")
        if not 1 <= top_k < cohort.shape[0]:
            raise ValueError(f"top_k must be from 1 to one less than the cohort size ({cohort.shape[0]}), got {top_k}.")
        self.cohort = cohort
        self.method = method
        self.top_k = top_k

    @property
    def dimension(self) -> int:
        return int(self.cohort.shape[1])

    def statistics(self, templates: np.ndarray) -> CohortStatistics:
        """Cohort statistics of each row of `templates` (a single template may be given as one row); a cohort
        member identical to the template (cosine ≥ SELF_MATCH) is left out of its neighbours."""
        matrix = np.atleast_2d(np.asarray(templates, dtype=np.float32))
        if matrix.shape[1] != self.dimension:
            raise ValueError(f"Templates have {matrix.shape[1]} values; the cohort's have {self.dimension}.")
        scores = matrix @ self.cohort.T
        scores[scores >= SELF_MATCH] = _LEFT_OUT
        k = min(self.top_k, self.cohort.shape[0] - 1)
        if k < scores.shape[1]:
            # The k best per row, in any order (mean and std need no sorting).
            scores = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        return CohortStatistics(mean=scores.mean(axis=1), std=np.maximum(scores.std(axis=1), _STD_FLOOR))

    def normalise(self, raw: np.ndarray, left: CohortStatistics, right: CohortStatistics) -> np.ndarray:
        """Normalised scores for a raw score matrix (len(left) × len(right)) from each side's statistics."""
        raw = np.asarray(raw, dtype=np.float64).reshape(len(left.mean), len(right.mean))
        lm, rm = left.mean[:, None].astype(np.float64), right.mean[None, :].astype(np.float64)
        if self.method == "csls":
            return 2.0 * raw - lm - rm
        ls, rs = left.std[:, None].astype(np.float64), right.std[None, :].astype(np.float64)
        return 0.5 * ((raw - lm) / ls + (raw - rm) / rs)

    def score_matrix(self, left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
        """Normalised scores of every row of `left` against every row of `right` (itself when None)."""
        left = np.atleast_2d(np.asarray(left, dtype=np.float32))
        right = left if right is None else np.atleast_2d(np.asarray(right, dtype=np.float32))
        left_stats = self.statistics(left)
        right_stats = left_stats if right is left else self.statistics(right)
        return self.normalise(left @ right.T, left_stats, right_stats)

    def score_pair(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.score_matrix(a, b)[0, 0])


def threshold_at_same_fmr(
    raw_impostor: np.ndarray, normalised_impostor: np.ndarray, raw_threshold: float
) -> tuple[float, float]:
    """(normalised threshold, FMR): the FMR of the impostor comparisons at the raw threshold (score ≥ it is a
    match), and the normalised threshold that lets the same number of those comparisons through."""
    raw_impostor = np.asarray(raw_impostor, dtype=np.float64)
    normalised_impostor = np.sort(np.asarray(normalised_impostor, dtype=np.float64))[::-1]
    if raw_impostor.size == 0 or raw_impostor.size != normalised_impostor.size:
        raise ValueError("Need the same, non-empty set of impostor comparisons on both scales.")
    accepted = int(np.sum(raw_impostor >= raw_threshold))
    fmr = accepted / raw_impostor.size
    if accepted == 0:
        return float(normalised_impostor[0] + 1e-6), fmr
    if accepted >= normalised_impostor.size:
        return float(normalised_impostor[-1]), fmr
    # Midway between the last accepted and the first refused normalised score.
    return float((normalised_impostor[accepted - 1] + normalised_impostor[accepted]) / 2.0), fmr


def balanced_selection(labels: Sequence[str], size: int, *, seed: int = 0) -> list[int]:
    """Indexes of up to `size` items, an equal share from each label value (blank labels are left out).

    A value with fewer items than its share gives all it has; the rest is not redistributed, so the result
    stays balanced. The draw is random with a fixed seed (reproducible), and the indexes come back sorted.
    """
    cells: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        if label:
            cells[label].append(index)
    if not cells or size < 1:
        return []
    share = size // len(cells)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(cells):
        members = np.array(cells[label])
        take = min(share, len(members))
        chosen.extend(int(i) for i in rng.choice(members, size=take, replace=False))
    return sorted(chosen)


def pair_indexes(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair (i < j) of `count` items, as two index arrays."""
    return np.triu_indices(count, 1)
