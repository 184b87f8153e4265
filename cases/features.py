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


def feature_checklist_rows(features: Mapping[str, str]) -> list[tuple[str, str]]:
    """(feature label, assessment label) for every feature of the list, "Not recorded" where none was given."""
    labels = dict(FeatureAssessment.choices)
    return [(label, labels.get(features.get(key, ""), "Not recorded")) for key, label in FACIAL_FEATURES]
