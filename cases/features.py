"""The morphological feature checklist a reviewer fills in beside a decision's rationale (FISWG-style).

Facial comparison by a trained person compares features one by one (FISWG, "Facial Image Comparison Feature
List for Morphological Analysis"). Each decision records, for each feature below, whether the probe and the
candidate look similar, different, or whether the feature cannot be seen in one of them. The checklist is
stored with the decision (`Decision.features`, a mapping of feature key to assessment) and printed in the
report; it supports the rationale and never replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models

from rfr.errors import InvalidInput


class FeatureAssessment(models.TextChoices):
    SIMILAR = "similar", "Similar"
    DIFFERENT = "different", "Different"
    NOT_VISIBLE = "not_visible", "Not visible"


# (key, label) in the order a reviewer works down the face; the keys are stored and must never change.
FACIAL_FEATURES: tuple[tuple[str, str], ...] = (
    ("face_shape", "Face shape"),
    ("hair", "Hair"),
    ("forehead", "Forehead"),
    ("eyebrows", "Eyebrows"),
    ("eyes", "Eyes"),
    ("nose", "Nose"),
    ("ears", "Ears"),
    ("mouth", "Mouth"),
    ("chin_jaw", "Chin and jaw"),
    ("facial_hair", "Facial hair"),
    ("marks", "Scars, marks and tattoos"),
)
FEATURE_KEYS = frozenset(key for key, _label in FACIAL_FEATURES)
FEATURE_ORDER = tuple(key for key, _label in FACIAL_FEATURES)


def feature_checklist_rows(features: Mapping[str, str]) -> list[tuple[str, str]]:
    """(feature label, assessment label) for every feature of the list, "Not recorded" where none was given."""
    labels = dict(FeatureAssessment.choices)
    return [(label, labels.get(features.get(key, ""), "Not recorded")) for key, label in FACIAL_FEATURES]


def features_clean(features: Mapping[str, object] | None) -> dict[str, str]:
    """The checklist as stored: only known feature keys, each with one of the three assessments; features left
    unassessed are simply absent. Anything else is refused with the offending keys named (`invalid_features`)."""
    if features is None:
        return {}
    if not isinstance(features, Mapping):
        raise InvalidInput("invalid_features", "The feature checklist must map feature names to assessments.")
    allowed = ", ".join(FeatureAssessment.values)
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for key, value in features.items():
        if key not in FEATURE_KEYS:
            errors[str(key)[:64]] = [f"Not a feature of the checklist; the features are: {', '.join(FEATURE_ORDER)}."]
        elif value in (None, ""):
            continue  # left unassessed
        elif value not in FeatureAssessment.values:
            errors[key] = [f"The assessment must be one of: {allowed}."]
        else:
            cleaned[key] = str(value)
    if errors:
        raise InvalidInput(
            "invalid_features",
            "The feature checklist holds unknown features or assessments.",
            fields={f"features.{key}": texts for key, texts in errors.items()},
        )
    # Stored in the checklist's own order, so the audit detail and the report read the same way.
    return {key: cleaned[key] for key in FEATURE_ORDER if key in cleaned}
