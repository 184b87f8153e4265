"""The face pipeline: decode → detect → 5-point align → embed → L2-normalise, plus per-face quality.

Plain Python with no Django imports, so workers, benchmarks and evaluation share one implementation.
"""

from faceengine.engine import AnalysedFace, FaceEngine, get_engine
from faceengine.errors import (
    AbsurdDimensions,
    CorruptImage,
    DecompressionBomb,
    EmptyImage,
    FaceEngineError,
    ImageRejected,
    ImageTooLarge,
    ModelPackError,
    PackIntegrityError,
    PackNotFound,
    UnsupportedImageType,
)
from faceengine.imageio import ImageLimits, decode_image, decode_image_file
from faceengine.packs import ModelPack, load_pack

__all__ = [
    "AbsurdDimensions",
    "AnalysedFace",
    "CorruptImage",
    "DecompressionBomb",
    "EmptyImage",
    "FaceEngine",
    "FaceEngineError",
    "ImageLimits",
    "ImageRejected",
    "ImageTooLarge",
    "ModelPack",
    "ModelPackError",
    "PackIntegrityError",
    "PackNotFound",
    "UnsupportedImageType",
    "decode_image",
    "decode_image_file",
    "get_engine",
    "load_pack",
]
