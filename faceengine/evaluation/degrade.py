"""Controlled degradation of a probe image, to measure accuracy by image quality (`evaluate ... --degrade`).

The image is shrunk with area averaging so that its face's inter-eye distance becomes `ied` pixels, then
blurred with a Gaussian of σ `blur` pixels, then saved and re-read as a JPEG of quality `jpeg`: the steps a
CCTV still goes through (a distant face, soft optics, heavy compression). The inter-eye distance is measured
from the pack's own detection on the clean image; an image whose face is already smaller is not enlarged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

DEFAULT_BLUR_SIGMA = 0.8
DEFAULT_JPEG_QUALITY = 35


@dataclass(frozen=True)
class Degradation:
    ied: float  # target inter-eye distance in pixels
    blur: float = DEFAULT_BLUR_SIGMA  # Gaussian σ in pixels; 0 = no blur
    jpeg: int = DEFAULT_JPEG_QUALITY  # JPEG quality 1–100; 0 = no JPEG round trip

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def label(self) -> str:
        return f"ied={self.ied:g},blur={self.blur:g},jpeg={self.jpeg}"


def parse_degradation(spec: str) -> Degradation:
    """`ied=N[,blur=S][,jpeg=Q]` → Degradation; ValueError with a readable message otherwise."""
    values: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in {"ied", "blur", "jpeg"} or key in values:
            raise ValueError(f"--degrade {spec!r}: expected ied=N[,blur=S][,jpeg=Q], e.g. ied=12,blur=0.8,jpeg=35.")
        values[key] = value
    if "ied" not in values:
        raise ValueError(f"--degrade {spec!r}: ied=N (the inter-eye distance in pixels) is required.")
    try:
        ied = float(values["ied"])
        blur = float(values.get("blur", DEFAULT_BLUR_SIGMA))
        jpeg = int(values.get("jpeg", DEFAULT_JPEG_QUALITY))
    except ValueError:
        raise ValueError(f"--degrade {spec!r}: ied and blur are numbers, jpeg a whole number.") from None
    if not 2.0 <= ied <= 1000.0:
        raise ValueError("--degrade: ied must be between 2 and 1000 pixels.")
    if not 0.0 <= blur <= 20.0:
        raise ValueError("--degrade: blur must be between 0 (none) and 20 pixels.")
    if not 0 <= jpeg <= 100:
        raise ValueError("--degrade: jpeg must be between 1 and 100 (0 = no JPEG round trip).")
    return Degradation(ied=ied, blur=blur, jpeg=jpeg)


def inter_eye_distance(landmarks: np.ndarray) -> float:
    points = np.asarray(landmarks, dtype=np.float64)
    return float(np.hypot(*(points[1] - points[0])))


def degrade_image(image_bgr: np.ndarray, *, face_ied: float, degradation: Degradation) -> np.ndarray:
    """The image with its face at `degradation.ied` px between the eyes (never enlarged), blurred, JPEG'd."""
    work = image_bgr
    scale = degradation.ied / face_ied if face_ied > 0 else 1.0
    if scale < 1.0:
        height, width = image_bgr.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    if degradation.blur > 0:
        work = cv2.GaussianBlur(work, (0, 0), sigmaX=degradation.blur, sigmaY=degradation.blur)
    if degradation.jpeg > 0:
        ok, encoded = cv2.imencode(".jpg", work, [cv2.IMWRITE_JPEG_QUALITY, degradation.jpeg])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR array
            raise ValueError("JPEG encoding failed")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        if decoded is None:  # pragma: no cover - decoding what OpenCV just encoded
            raise ValueError("JPEG decoding failed")
        work = decoded
    return work
