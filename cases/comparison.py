"""What the candidate page's comparison view draws (static/js/compare.js): for the probe and the candidate,
the face box and five landmarks in the pixels of the image shown, and the same for their aligned crops, so the
view can open centred on each face, zoom both faces together at a common face size, mark which face of a group
probe was searched, and show the landmarks on request. Without JavaScript the images and the searched face's
box still show (the box is drawn server-side over the probe). The probe is shown from its original, not the
reduced display copy of the probe page: an examiner zooms into the face and needs every pixel there is.
"""

from __future__ import annotations

from typing import Any

from cases.models import ProbeFace
from faceengine.align import ALIGNED_SIZE, ARCFACE_TEMPLATE_112
from search.models import Template

# In an aligned crop the face is where the template puts it: the box the view centres on and zooms to.
CROP_FACE_BOX = [16.0, 24.0, 80.0, 84.0]
CROP_LANDMARKS = [[round(float(x), 2), round(float(y), 2)] for x, y in ARCFACE_TEMPLATE_112]


def _points(values: Any) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in (values or [])]


def _box(values: Any) -> list[float]:
    return [round(float(v), 2) for v in values]


def comparison_view(*, face: ProbeFace, template: Template | None) -> dict[str, Any]:
    """Geometry for both sides of the comparison. The probe's size is known from its row; the gallery image's
    is read by the browser once it loads (it is not stored), so its side carries only the face."""
    probe = face.probe
    others = probe.faces.count() - 1
    return {
        "probe": {
            "width": probe.width or 0,
            "height": probe.height or 0,
            "box": _box(face.box),
            "landmarks": _points(face.landmarks),
        },
        "candidate": (
            {"box": _box(template.box), "landmarks": _points(template.landmarks)} if template is not None else None
        ),
        "crop": {"size": ALIGNED_SIZE, "box": CROP_FACE_BOX, "landmarks": CROP_LANDMARKS},
        # On a group probe the page says which face was searched; the box marks it either way.
        "other_faces": max(0, others),
    }
