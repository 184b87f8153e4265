"""Typed errors of the face engine. Each carries a stable `code` and a message a person can act on."""

from __future__ import annotations


class FaceEngineError(Exception):
    code = "face_engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageRejected(FaceEngineError):
    """The input cannot be used as an image; nothing was processed."""

    code = "image_rejected"


class EmptyImage(ImageRejected):
    code = "empty_file"


class ImageTooLarge(ImageRejected):
    code = "file_too_large"


class UnsupportedImageType(ImageRejected):
    code = "unsupported_type"


class CorruptImage(ImageRejected):
    code = "corrupt_image"


class DecompressionBomb(ImageRejected):
    code = "decompression_bomb"


class AbsurdDimensions(ImageRejected):
    code = "absurd_dimensions"


class ModelPackError(FaceEngineError):
    code = "model_pack_error"


class PackNotFound(ModelPackError):
    code = "model_pack_not_found"


class PackManifestError(ModelPackError):
    code = "model_pack_manifest"


class PackIntegrityError(ModelPackError):
    code = "model_pack_integrity"


class UnsupportedArchitecture(ModelPackError):
    code = "model_pack_architecture"
