"""Error rates over comparison scores, shared by the protocols: 1:1 verification (accuracy threshold, TAR at
FAR, EER, per-group FMR and FNMR) and 1:N identification (threshold at FPIR)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The accuracy-maximising threshold, placed midway between neighbouring scores (ties → lower)."""
    order = np.sort(np.unique(scores))
    candidates = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2.0, [order[-1] + 1e-6]])
    accuracies = [float(((scores >= t) == same).mean()) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the lowest threshold whose false accept rate does not exceed `far`."""
    impostor = np.sort(scores[~same])[::-1]
    genuine = scores[same]
    allowed = int(np.floor(far * len(impostor)))
    # Accept strictly above the (allowed+1)-th highest impostor score.
    threshold = float(impostor[allowed]) if allowed < len(impostor) else float(impostor[-1]) - 1e-6
    return float((genuine > threshold).mean()), threshold


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    thresholds = np.unique(scores)
    genuine, impostor = scores[same], scores[~same]
    fnmr = np.array([(genuine < t).mean() for t in thresholds])
    fmr = np.array([(impostor >= t).mean() for t in thresholds])
    index = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[index] + fmr[index]) / 2.0), float(thresholds[index])


@dataclass(frozen=True)
class GroupRates:
    group: str
    genuine_pairs: int
    impostor_pairs: int
    fmr: float | None
    fnmr: float | None


def group_rates(scores: np.ndarray, same: np.ndarray, groups: list[str], threshold: float) -> list[GroupRates]:
    labels = np.array(groups)
    rows = []
    for group in sorted(set(groups)):
        mask = labels == group
        genuine, impostor = scores[mask & same], scores[mask & ~same]
        rows.append(
            GroupRates(
                group=group,
                genuine_pairs=len(genuine),
                impostor_pairs=len(impostor),
                fmr=float((impostor >= threshold).mean()) if len(impostor) else None,
                fnmr=float((genuine < threshold).mean()) if len(genuine) else None,
            )
        )
    return rows


def threshold_at_fpir(nonmated_top_scores: list[float], fpir: float) -> float:
    """T such that at most a fraction `fpir` of non-mated top scores is strictly above it."""
    ordered = sorted(nonmated_top_scores, reverse=True)
    allowed = math.floor(fpir * len(ordered))
    return ordered[allowed] if allowed < len(ordered) else -math.inf
