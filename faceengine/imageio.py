"""Safe image decoding: every accepted image becomes an upright BGR uint8 array, everything else a typed error.

Pillow reads only the header before we check dimensions, so a decompression bomb is refused before any
pixel is allocated. EXIF orientation is applied, so a phone photo saved sideways yields the same face.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceengine.errors import (
    AbsurdDimensions,
    CorruptImage,
    DecompressionBomb,
    EmptyImage,
    ImageTooLarge,
    UnsupportedImageType,
)

# MPO is how many cameras store JPEGs with a preview; it decodes as JPEG.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"}
ACCEPTED_DESCRIPTION = "JPEG, PNG, WebP, BMP or TIFF"


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 60_000_000
    max_side: int = 16_384
    min_side: int = 16


def _megabytes(size: int) -> str:
    # Binary megabytes, as the documentation states the limit (40 MB = 41,943,040 bytes): decimal megabytes
    # made the same limit read "42 MB".
    value = size / (1024 * 1024)
    return f"{value:.0f} MB" if value == round(value) else f"{value:.1f} MB"


def decode_image_file(path: str | Path, limits: ImageLimits | None = None) -> np.ndarray:
    limits = limits or ImageLimits()
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise ImageTooLarge(
            f"The file is {_megabytes(size)}; the limit is {_megabytes(limits.max_bytes)}. Send a smaller copy."
        )
    return decode_image(path.read_bytes(), limits)


def decode_image(data: bytes, limits: ImageLimits | None = None) -> np.ndarray:
    """Decode bytes to an upright, 3-channel BGR uint8 array, or raise an `ImageRejected` subclass."""
    limits = limits or ImageLimits()
    if not data:
        raise EmptyImage("The file is empty. Choose the image file again.")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"The file is {_megabytes(len(data))}; the limit is {_megabytes(limits.max_bytes)}. Send a smaller copy."
        )
    with warnings.catch_warnings():
        # Our own pixel limit applies below; Pillow's warning would only duplicate it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise UnsupportedImageType(
                f"This file is not an image rfr can read. Send a {ACCEPTED_DESCRIPTION} file."
            ) from None
        except Image.DecompressionBombError:
            raise DecompressionBomb(
                "The image declares far more pixels than it could hold; it was refused as a decompression bomb."
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImage(f"The image header is damaged ({exc}). Send an undamaged copy.") from None
        with image:
            if image.format not in ACCEPTED_FORMATS:
                raise UnsupportedImageType(
                    f"{image.format or 'This'} images are not accepted. Send a {ACCEPTED_DESCRIPTION} file."
                )
            width, height = image.size
            if width < limits.min_side or height < limits.min_side:
                raise AbsurdDimensions(
                    f"The image is {width}×{height} pixels; at least {limits.min_side} on each side is needed."
                )
            if width > limits.max_side or height > limits.max_side:
                raise AbsurdDimensions(f"The image is {width}×{height} pixels; no side may exceed {limits.max_side}.")
            if width * height > limits.max_pixels:
                raise DecompressionBomb(
                    f"The image is {width}×{height} = {width * height / 1e6:.0f} megapixels; the limit is"
                    f" {limits.max_pixels / 1e6:.0f}. Send a smaller copy."
                )
            try:
                image.load()
                upright = ImageOps.exif_transpose(image) or image
                rgb = _to_rgb(upright)
            except Image.DecompressionBombError:
                raise DecompressionBomb("The image expands to too many pixels; it was refused.") from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise CorruptImage(
                    f"The image is truncated or damaged and cannot be decoded ({exc}). Send an undamaged copy."
                ) from None
    array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array[:, :, ::-1])


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as an image viewer shows them, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        return Image.fromarray((array * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")
