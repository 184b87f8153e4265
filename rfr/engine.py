"""The project's one handle on the face engine: the active model pack, loaded lazily once per process, and
the image limits every decode uses. faceengine itself knows nothing of Django; this is where settings meet it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from faceengine import FaceEngine, ImageLimits, ImageRejected, get_engine
from faceengine.errors import ImageTooLarge, UnsupportedImageType
from rfr.errors import ApplicationError, InvalidInput, PayloadTooLarge, UnsupportedMediaType


def active_pack_dir() -> Path:
    return Path(settings.RFR_MODEL_PACK_DIR) / settings.RFR_MODEL_PACK


def active_engine() -> FaceEngine:
    return get_engine(active_pack_dir(), threads=settings.RFR_ENGINE_THREADS)


def image_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.RFR_MAX_UPLOAD_BYTES,
        max_pixels=settings.RFR_MAX_IMAGE_PIXELS,
        max_side=settings.RFR_MAX_IMAGE_SIDE,
    )


def image_rejection_error(rejected: ImageRejected) -> ApplicationError:
    """The application error for an image the engine refused: too large is 413, not an image we read is 415,
    anything else (corrupt, empty, absurd dimensions, decompression bomb) 400."""
    if isinstance(rejected, ImageTooLarge):
        return PayloadTooLarge(rejected.code, rejected.message)
    if isinstance(rejected, UnsupportedImageType):
        return UnsupportedMediaType(rejected.code, rejected.message)
    return InvalidInput(rejected.code, rejected.message)
