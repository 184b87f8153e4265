"""Per-face quality measures from landmarks and the aligned crop, with the warnings an operator sees."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

# Size warnings from the inter-eye distance, set from `python -m bench.quality` (docs/evaluation.md): with
# the default pack, LFW same-person pairs whose second image is shrunk (blur σ 0.8, JPEG 35) have a median
# score of 0.60 at 40 px, 0.54 at 24 px, 0.41 at 16 px and 0.29 at 12 px, below the operating threshold
# 0.30. "Very small" (a reason is needed to search) is under 14 px; "small" (weaker scores: the median has
# lost a tenth) under 24 px.
SMALL_INTER_EYE_PX = 24.0
VERY_SMALL_INTER_EYE_PX = 14.0
BLUR_VARIANCE_MIN = 60.0
TURNED_AWAY_YAW_DEG = 30.0
NOSE_DEPTH_RATIO = 1.2
TILTED_ROLL_DEG = 30.0
LOW_SCORE = 0.75
# Set on faces made from five points a person placed (FaceEngine.analyse_landmarks), never by assess_quality.
MANUAL_LANDMARKS = "manual_landmarks"

# A detection this small and this unsure is more often a blob than a face: celeba 7261/021236.jpg has a 6 px
# background patch at 0.63, while real faces shrunk to 12 px between the eyes (LFW, blurred, JPEG 35) score
# 0.77 or more in 95 of 100 cases. Such detections are kept but flagged `uncertain` and listed last.
UNCERTAIN_SCORE = 0.7
UNCERTAIN_INTER_EYE_PX = 8.0
# Usability ranks the faces of an image, most usable first: the detector score, scaled down for a face with
# fewer than USABLE_INTER_EYE_PX between the eyes and halved for each of blurred and turned away.
USABLE_INTER_EYE_PX = 40.0


@dataclass(frozen=True)
class FaceQuality:
    inter_eye_px: float
    landmark_span_px: float
    blur_variance: float
    yaw_deg: float
    roll_deg: float
    detector_score: float
    warnings: tuple[str, ...]
    uncertain: bool = False
    usability: float = 0.0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 2 if key not in {"detector_score", "usability"} else 4)
        return data


def assess_quality(landmarks: np.ndarray, aligned_bgr: np.ndarray, detector_score: float) -> FaceQuality:
    points = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose = points[0], points[1], points[2]
    eye_vector = right_eye - left_eye
    inter_eye = float(np.hypot(*eye_vector))
    span = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])))
    roll = math.degrees(math.atan2(eye_vector[1], eye_vector[0]))
    # Yaw from how far the nose tip sits off the eye midpoint along the eye line (roll removed). Turning by θ
    # moves the tip by depth·sin θ while the eyes close up to their distance·cos θ; with the nose tip about
    # 0.6 eye-distances in front of the eyes the ratio below is 1.2·tan θ.
    if inter_eye > 1e-6:
        unit = eye_vector / inter_eye
        ratio = float(np.dot(nose - (left_eye + right_eye) / 2.0, unit)) / (inter_eye / 2.0)
        yaw = math.degrees(math.atan(ratio / NOSE_DEPTH_RATIO))
    else:
        yaw = 90.0
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY)
    blur = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    warnings: list[str] = []
    if inter_eye < VERY_SMALL_INTER_EYE_PX:
        warnings.append("very_small")
    elif inter_eye < SMALL_INTER_EYE_PX:
        warnings.append("small")
    if blur < BLUR_VARIANCE_MIN:
        warnings.append("blurred")
    if abs(yaw) > TURNED_AWAY_YAW_DEG:
        warnings.append("turned_away")
    if abs(roll) > TILTED_ROLL_DEG:
        warnings.append("tilted")
    if detector_score < LOW_SCORE:
        warnings.append("low_detector_score")
    uncertain = detector_score < UNCERTAIN_SCORE and inter_eye < UNCERTAIN_INTER_EYE_PX
    if uncertain:
        warnings.append("uncertain")
    usability = float(detector_score) * min(1.0, inter_eye / USABLE_INTER_EYE_PX)
    usability *= (0.5 if "blurred" in warnings else 1.0) * (0.5 if "turned_away" in warnings else 1.0)
    return FaceQuality(
        inter_eye_px=inter_eye,
        landmark_span_px=span,
        blur_variance=blur,
        yaw_deg=yaw,
        roll_deg=roll,
        detector_score=float(detector_score),
        warnings=tuple(warnings),
        uncertain=uncertain,
        usability=usability,
    )


def usability_order(qualities: list[FaceQuality]) -> list[int]:
    """Indexes of the faces, most usable first; uncertain detections after all the others."""
    return sorted(range(len(qualities)), key=lambda i: (qualities[i].uncertain, -qualities[i].usability))


WARNING_TEXT = {
    "very_small": (
        f"Face is very small (under {VERY_SMALL_INTER_EYE_PX:g} px between the eyes): same-person scores are"
        " mostly below the operating"
        " threshold; record a reason to search."
    ),
    "small": f"Face is small (under {SMALL_INTER_EYE_PX:g} px between the eyes): expect weaker scores.",
    "blurred": "Face looks blurred: expect weaker scores.",
    "turned_away": "Face is turned away from the camera: expect weaker scores.",
    "tilted": "Head is strongly tilted.",
    "low_detector_score": "The detector is unsure this is a face.",
    MANUAL_LANDMARKS: (
        "Manually marked landmarks: alignment depends on where a person placed the points; expect weaker"
        " and less stable scores."
    ),
    "uncertain": "Uncertain detection: tiny and low-scored, probably not a face.",
}
