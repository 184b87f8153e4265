"""The project's one handle on the face engine: the active model pack, loaded lazily once per process, and
the image limits every decode uses. faceengine itself knows nothing of Django; this is where settings meet it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from faceengine import FaceEngine, ImageLimits, ImageRejected, get_engine
from faceengine.errors import ImageTooLarge, UnsupportedImageType
from rfr.errors import ApplicationError, InvalidInput, PayloadTooLarge, UnsupportedMediaType

# The app that stores an administrator's choice of pack registers how to read it (search, in its AppConfig.ready),
# so this kernel module needs no app import; without one, or with no choice stored, RFR_MODEL_PACK decides.
_active_pack_choice: Callable[[], str | None] | None = None


def active_pack_choice_register(reader: Callable[[], str | None]) -> None:
    global _active_pack_choice
    _active_pack_choice = reader


def active_pack_name() -> str:
    """The folder name of the active pack: the administrator's stored choice, else the RFR_MODEL_PACK setting."""
    chosen = _active_pack_choice() if _active_pack_choice is not None else None
    return chosen or settings.RFR_MODEL_PACK


def active_pack_dir() -> Path:
    return Path(settings.RFR_MODEL_PACK_DIR) / active_pack_name()


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
