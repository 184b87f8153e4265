"""The face pipeline: decode → detect → 5-point align → embed → L2-normalise, plus per-face quality.

Plain Python with no Django imports, so workers, benchmarks and evaluation share one implementation.
"""

from faceengine.engine import (
    STAGE_DECODING,
    STAGE_DETECTING,
    STAGE_ENCODING,
    AnalysedFace,
    EncodedAnalysis,
    FaceEngine,
    get_engine,
)
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
from faceengine.imageio import DecodedImage, ImageLimits, decode_image, decode_image_file, decode_image_reduced
from faceengine.packs import ModelPack, load_pack

__all__ = [
    "STAGE_DECODING",
    "STAGE_DETECTING",
    "STAGE_ENCODING",
    "AbsurdDimensions",
    "AnalysedFace",
    "CorruptImage",
    "DecodedImage",
    "DecompressionBomb",
    "EmptyImage",
    "EncodedAnalysis",
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
    "decode_image_reduced",
    "get_engine",
    "load_pack",
]
