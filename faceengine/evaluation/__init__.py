"""Accuracy measured on labelled data, one module per protocol over shared readers and metrics.

* `verification`: 1:1 pairs (LFW protocol): cross-fold accuracy, TAR at FAR, EER, per-group FMR and FNMR.
* `identification`: open-set 1:N search: rank-k, FNIR at FPIR, per group.
* `demographics`: false matches within each sex, race and age band (and FNMR where identities are given),
  the max/min ratios, and DET curves per group.
* `degrade`: controlled degradation (shrink, blur, JPEG) of the right image of each pair, `--degrade`.
* `metrics`: error rates over scores; `datasets`: CSV readers, natural order, primary-face templates.

Plain Python like the rest of faceengine: callers (`manage.py evaluate`, benchmarks) pass the engine and
the image limits in.
"""

from faceengine.evaluation.datasets import (
    IdentityRow,
    natural_key,
    primary_template,
    read_groups,
    read_identities,
    read_pairs,
)
from faceengine.evaluation.degrade import Degradation, degrade_image, inter_eye_distance, parse_degradation
from faceengine.evaluation.demographics import (
    curves_from_pair_scores,
    demographic_rates,
    format_demographics_report,
    run_demographics,
)
from faceengine.evaluation.identification import format_identification_report, run_identification
from faceengine.evaluation.metrics import (
    GroupRates,
    best_threshold,
    equal_error_rate,
    group_rates,
    tar_at_far,
    threshold_at_fpir,
)
from faceengine.evaluation.verification import (
    compute_templates,
    format_verification_report,
    pair_scores,
    run_verification,
    verification_rates,
)

__all__ = [
    "Degradation",
    "GroupRates",
    "IdentityRow",
    "best_threshold",
    "compute_templates",
    "curves_from_pair_scores",
    "degrade_image",
    "demographic_rates",
    "equal_error_rate",
    "format_demographics_report",
    "format_identification_report",
    "format_verification_report",
    "group_rates",
    "inter_eye_distance",
    "natural_key",
    "pair_scores",
    "parse_degradation",
    "primary_template",
    "read_groups",
    "read_identities",
    "read_pairs",
    "run_demographics",
    "run_identification",
    "run_verification",
    "tar_at_far",
    "threshold_at_fpir",
    "verification_rates",
]
