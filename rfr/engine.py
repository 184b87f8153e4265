"""The Django side's handle on the face engine: the active pack, loaded lazily once per process."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from faceengine import FaceEngine, ImageLimits, get_engine


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
