"""Safe image decoding: every accepted image becomes an upright BGR uint8 array, everything else a typed error.

Pillow reads only the header before we check dimensions, so a decompression bomb is refused before any
pixel is allocated. EXIF orientation is applied, so a phone photo saved sideways yields the same face.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
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
    return decode_image_reduced(data, limits).pixels


@dataclass(frozen=True)
class DecodedImage:
    """An upright BGR array decoded at `factor` times reduced size (1, 2, 4 or 8), and the upright size of the
    full image. A pixel (x, y) of `pixels` covers the full image's pixels factor·x … factor·x + factor − 1."""

    pixels: np.ndarray
    factor: int
    full_width: int
    full_height: int

    def to_full(self, points: np.ndarray) -> np.ndarray:
        """Pixel-centre coordinates in `pixels` → the same points in the full image."""
        return (np.asarray(points, dtype=np.float32) + 0.5) * self.factor - 0.5

    def from_full(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float32) + 0.5) / self.factor - 0.5


# JPEG's DCT scaling decodes at 1/2, 1/4 or 1/8 of the size for a fraction of the work of a full decode.
REDUCTION_FACTORS = (8, 4, 2)
# EXIF orientations 5 to 8 turn the image a quarter: the upright width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}


def reduction_factor(width: int, height: int, reduce_to: int | None) -> int:
    """The largest JPEG reduction that keeps the longer side at least `reduce_to` (1 when none does)."""
    if not reduce_to:
        return 1
    longer = max(width, height)
    return next((f for f in REDUCTION_FACTORS if -(-longer // f) >= reduce_to), 1)


def decode_image_reduced(
    data: bytes, limits: ImageLimits | None = None, *, reduce_to: int | None = None
) -> DecodedImage:
    """Decode, as `decode_image` does, but a JPEG whose longer side is at least twice `reduce_to` is decoded
    at reduced scale (its longer side still at least `reduce_to`). The checks are the same at any scale:
    dimensions from the header before any pixel, and the whole compressed stream is read, so a truncated
    file is refused. Other formats are decoded at full size (factor 1)."""
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
            factor = reduction_factor(width, height, reduce_to) if image.format in {"JPEG", "MPO"} else 1
            orientation: int | None
            try:
                orientation = int(image.getexif().get(0x0112, 1) or 1)
            except (OSError, SyntaxError, ValueError, TypeError):
                orientation = None  # a damaged EXIF block: exif_transpose below decides, as it always did
            if factor > 1:
                image.draft("RGB", (width // factor, height // factor))
                factor = max(1, round(width / image.size[0]))
            try:
                image.load()
                # Without a turn to make, exif_transpose would only copy every pixel.
                upright = (ImageOps.exif_transpose(image) or image) if orientation != 1 else image
                rgb = _to_rgb(upright)
            except Image.DecompressionBombError:
                raise DecompressionBomb("The image expands to too many pixels; it was refused.") from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise CorruptImage(
                    f"The image is truncated or damaged and cannot be decoded ({exc}). Send an undamaged copy."
                ) from None
    array = np.asarray(rgb, dtype=np.uint8)
    full_width, full_height = (height, width) if orientation in _QUARTER_TURNS else (width, height)
    if factor == 1:
        full_width, full_height = array.shape[1], array.shape[0]
    return DecodedImage(
        pixels=cv2.cvtColor(array, cv2.COLOR_RGB2BGR),
        factor=factor,
        full_width=full_width,
        full_height=full_height,
    )


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
