"""Enhancement on the record: a fixed set of deterministic image operations and the chain runner.

Each operation is a pure function of the image and its stated parameters: crop, rotate, de-interlace, resize
(Lanczos), gamma, contrast (CLAHE), denoise (non-local means), unsharp mask, and deconvolution of a stated
motion or Gaussian blur (Wiener, or Richardson-Lucy with a fixed number of iterations). Nothing is learned
from data and nothing is invented: generative restoration (face hallucination, GAN super-resolution) is not
offered, because it can add features that were never in the image.

`operations_validate` checks a JSON list of `{"op": name, "params": {...}}` and returns it with every
parameter made explicit (defaults filled in, numbers in their canonical type), so that the recorded chain is
complete. `chain_apply` runs a validated chain on a BGR image with OpenCV held to one thread, so the same
parent bytes and the same chain give the same output bytes (`image_png_bytes`). `ENHANCE_VERSION` and the
library versions go on the record with the chain (`chain_environment`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceengine.errors import FaceEngineError

# Bump when an operation's arithmetic changes: a recorded chain names the version it was made with.
ENHANCE_VERSION = 1
MAX_OPERATIONS = 20
# The largest image an operation may produce (resize, rotate): the same order as the upload limits.
MAX_OUTPUT_SIDE = 8192
MAX_OUTPUT_PIXELS = 40_000_000
# The slow operations run in the request (preview and save), so they take a bounded input: on this class of
# machine non-local means takes about 3.5 s a million pixels and deconvolution about 1.2 s. A face to enhance
# is a small region: crop to it first.
HEAVY_MAX_PIXELS = {"denoise": 1_000_000, "deconvolve": 2_000_000}


class EnhanceRefused(FaceEngineError):
    """A chain or one of its parameters was refused; `message` says which and why."""

    code = "invalid_enhancement"


@dataclass(frozen=True)
class Param:
    kind: str  # "int", "float" or "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class OperationSpec:
    name: str
    label: str
    description: str
    params: dict[str, Param]
    apply: Callable[[np.ndarray, dict[str, Any]], np.ndarray]


# --- The operations ----------------------------------------------------------------------------------------


def _crop(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    height, width = image.shape[:2]
    x, y, w, h = p["x"], p["y"], p["width"], p["height"]
    if x + w > width or y + h > height:
        raise EnhanceRefused(
            f"the region {x},{y} {w}x{h} does not lie inside the image at this step ({width} x {height} pixels)."
        )
    return np.ascontiguousarray(image[y : y + h, x : x + w])


def _rotate(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    angle = float(p["angle"])  # degrees, anticlockwise, as a person reads "rotate left by"
    quarter = {90.0: cv2.ROTATE_90_COUNTERCLOCKWISE, -90.0: cv2.ROTATE_90_CLOCKWISE, 180.0: cv2.ROTATE_180}
    if angle == 0.0:
        return image.copy()
    if angle in quarter or angle == -180.0:
        return cv2.rotate(image, quarter.get(angle, cv2.ROTATE_180))
    height, width = image.shape[:2]
    radians = math.radians(angle)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    new_w, new_h = math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)
    _size_check("rotate", new_w, new_h)
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, 1.0)
    matrix[0, 2] += (new_w - width) / 2.0
    matrix[1, 2] += (new_h - height) / 2.0
    # The whole rotated image is kept (the canvas grows); the corners it uncovers are black, not invented.
    return cv2.warpAffine(
        image, matrix, (new_w, new_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def _deinterlace(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    height = image.shape[0]
    if height < 2:
        raise EnhanceRefused("the image needs at least two lines.")
    if p["method"] == "field_blend":
        # Each line averaged with the next (the last with itself): the two fields blended, no line dropped.
        following = np.concatenate([image[1:], image[-1:]], axis=0)
        blended = (image.astype(np.uint16) + following.astype(np.uint16) + 1) // 2
        return blended.astype(np.uint8)
    # Line doubling: keep one field (even or odd lines) and repeat each of its lines.
    start = 0 if p["field"] == "even" else 1
    field = image[start::2]
    return np.ascontiguousarray(np.repeat(field, 2, axis=0)[:height])


def _resize(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    height, width = image.shape[:2]
    scale = float(p["scale"])
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    _size_check("resize", new_w, new_h)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LANCZOS4)


def _gamma(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    gamma = float(p["gamma"])
    # output = 255 * (input / 255) ** (1 / gamma): a gamma above 1 brightens the dark tones.
    table = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma)), 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def _clahe(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    tiles = int(p["tiles"])
    clahe = cv2.createCLAHE(clipLimit=float(p["clip_limit"]), tileGridSize=(tiles, tiles))
    # On lightness only, so colours are not shifted.
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def _denoise(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    strength = float(p["strength"])
    return cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 21)


def _unsharp(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    sigma, amount = float(p["sigma"]), float(p["amount"])
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    sharpened = image.astype(np.float64) * (1.0 + amount) - blurred.astype(np.float64) * amount
    return np.clip(np.round(sharpened), 0, 255).astype(np.uint8)


def _psf(p: dict[str, Any]) -> np.ndarray:
    """The stated blur as a normalised point-spread function (odd size, centred)."""
    if p["blur"] == "gaussian":
        sigma = float(p["sigma"])
        radius = max(1, math.ceil(3.0 * sigma))
        axis = np.arange(-radius, radius + 1, dtype=np.float64)
        g = np.exp(-(axis**2) / (2.0 * sigma * sigma))
        kernel = np.outer(g, g)
    else:
        length, angle = float(p["length"]), math.radians(float(p["angle"]))
        radius = max(1, math.ceil(length / 2.0))
        size = 2 * radius + 1
        kernel = np.zeros((size, size), np.float64)
        # A line of the stated length through the centre, sampled finely (anticlockwise from horizontal).
        steps = max(2, math.ceil(length * 8))
        for t in np.linspace(-length / 2.0, length / 2.0, steps):
            x = radius + t * math.cos(angle)
            y = radius - t * math.sin(angle)
            kernel[int(np.rint(y)), int(np.rint(x))] += 1.0
    return kernel / kernel.sum()


def _deconvolve(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    psf = _psf(p)
    data = image.astype(np.float64) / 255.0
    if p["method"] == "wiener":
        height, width = data.shape[:2]
        pad = psf.shape[0]
        padded = cv2.copyMakeBorder(data, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        ph, pw = padded.shape[:2]
        otf_kernel = np.zeros((ph, pw), np.float64)
        kh, kw = psf.shape
        otf_kernel[:kh, :kw] = psf
        otf_kernel = np.roll(otf_kernel, (-(kh // 2), -(kw // 2)), axis=(0, 1))
        otf = np.fft.rfft2(otf_kernel)
        balance = 1.0 / float(p["snr"])  # the noise-to-signal power ratio: the Wiener filter's one parameter
        wiener = np.conj(otf) / (np.abs(otf) ** 2 + balance)
        out = np.empty_like(padded)
        for c in range(padded.shape[2]):
            out[:, :, c] = np.fft.irfft2(np.fft.rfft2(padded[:, :, c]) * wiener, s=(ph, pw))
        restored = out[pad : pad + height, pad : pad + width]
    else:
        # Richardson-Lucy: a fixed number of multiplicative updates, starting from the observed image.
        flipped = psf[::-1, ::-1].copy()
        estimate = data.copy()
        for _ in range(int(p["iterations"])):
            convolved = cv2.filter2D(estimate, -1, psf, borderType=cv2.BORDER_REFLECT)
            ratio = data / np.maximum(convolved, 1e-6)
            estimate = estimate * cv2.filter2D(ratio, -1, flipped, borderType=cv2.BORDER_REFLECT)
        restored = estimate
    return np.clip(np.round(restored * 255.0), 0, 255).astype(np.uint8)


def _size_check(op: str, width: int, height: int) -> None:
    if max(width, height) > MAX_OUTPUT_SIDE or width * height > MAX_OUTPUT_PIXELS:
        raise EnhanceRefused(
            f"the result would be {width} x {height} pixels, larger than rfr makes ({MAX_OUTPUT_SIDE} pixels"
            f" a side, {MAX_OUTPUT_PIXELS // 1_000_000} million pixels)."
        )


_BLUR = {
    "blur": Param("choice", "motion", choices=("motion", "gaussian"), label="Blur to undo"),
    "length": Param("float", 5.0, 1.0, 50.0, label="Motion length (pixels)"),
    "angle": Param("float", 0.0, -180.0, 180.0, label="Motion angle (degrees, anticlockwise)"),
    "sigma": Param("float", 1.0, 0.3, 10.0, label="Gaussian blur sigma (pixels)"),
    "method": Param("choice", "wiener", choices=("wiener", "richardson_lucy"), label="Method"),
    "snr": Param("float", 100.0, 2.0, 10000.0, label="Signal-to-noise ratio (Wiener)"),
    "iterations": Param("int", 10, 1, 50, label="Iterations (Richardson-Lucy)"),
}

OPERATIONS: dict[str, OperationSpec] = {
    spec.name: spec
    for spec in [
        OperationSpec(
            "crop",
            "Crop",
            "Keep a rectangle of the image (pixels of the image at this step).",
            {
                "x": Param("int", 0, 0, MAX_OUTPUT_SIDE, label="Left (x)"),
                "y": Param("int", 0, 0, MAX_OUTPUT_SIDE, label="Top (y)"),
                "width": Param("int", None, 8, MAX_OUTPUT_SIDE, label="Width"),
                "height": Param("int", None, 8, MAX_OUTPUT_SIDE, label="Height"),
            },
            _crop,
        ),
        OperationSpec(
            "rotate",
            "Rotate",
            "Rotate anticlockwise by an angle in degrees; the canvas grows to keep the whole image.",
            {"angle": Param("float", 0.0, -180.0, 180.0, label="Angle (degrees, anticlockwise)")},
            _rotate,
        ),
        OperationSpec(
            "deinterlace",
            "De-interlace",
            "Undo interlacing combing: keep one field and double its lines, or blend the two fields.",
            {
                "method": Param("choice", "line_double", choices=("line_double", "field_blend"), label="Method"),
                "field": Param("choice", "even", choices=("even", "odd"), label="Field kept (line doubling)"),
            },
            _deinterlace,
        ),
        OperationSpec(
            "resize",
            "Resize (Lanczos)",
            "Scale by a factor with Lanczos interpolation; enlarging adds no detail that was not there.",
            {"scale": Param("float", 2.0, 0.1, 8.0, label="Scale factor")},
            _resize,
        ),
        OperationSpec(
            "gamma",
            "Gamma",
            "Brighten (gamma above 1) or darken (below 1) the mid-tones.",
            {"gamma": Param("float", 1.5, 0.2, 5.0, label="Gamma")},
            _gamma,
        ),
        OperationSpec(
            "clahe",
            "Contrast (CLAHE)",
            "Local contrast equalisation of lightness, limited so that noise is not amplified without bound.",
            {
                "clip_limit": Param("float", 2.0, 0.5, 10.0, label="Clip limit"),
                "tiles": Param("int", 8, 2, 16, label="Tiles per side"),
            },
            _clahe,
        ),
        OperationSpec(
            "denoise",
            "Denoise (non-local means)",
            "Average similar patches to reduce noise; a high strength also removes fine detail.",
            {"strength": Param("float", 5.0, 1.0, 30.0, label="Strength (h)")},
            _denoise,
        ),
        OperationSpec(
            "unsharp",
            "Unsharp mask",
            "Sharpen edges: add back the difference from a Gaussian-blurred copy.",
            {
                "sigma": Param("float", 1.0, 0.3, 10.0, label="Radius (sigma, pixels)"),
                "amount": Param("float", 1.0, 0.1, 5.0, label="Amount"),
            },
            _unsharp,
        ),
        OperationSpec(
            "deconvolve",
            "Deconvolve a stated blur",
            "Undo a blur the investigator states (a straight motion of a length and angle, or a Gaussian"
            " blur), by Wiener filtering or a fixed number of Richardson-Lucy iterations.",
            _BLUR,
            _deconvolve,
        ),
    ]
}


# --- Validation and the chain ------------------------------------------------------------------------------


def _param_value(op: str, name: str, spec: Param, raw: Any) -> Any:
    where = f"{op}: {name}"
    if spec.kind == "choice":
        if not isinstance(raw, str) or raw not in spec.choices:
            raise EnhanceRefused(f"{where} must be one of {', '.join(spec.choices)}.")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise EnhanceRefused(f"{where} must be a number.")
    try:
        number = float(raw)
    except ValueError:
        raise EnhanceRefused(f"{where} must be a number.") from None
    if not math.isfinite(number):
        raise EnhanceRefused(f"{where} must be a finite number.")
    if spec.kind == "int":
        if number != int(number):
            raise EnhanceRefused(f"{where} must be a whole number.")
        value: int | float = int(number)
    else:
        value = round(number, 4)  # the recorded value is the value used
    assert spec.low is not None and spec.high is not None
    if not spec.low <= value <= spec.high:
        raise EnhanceRefused(f"{where} must be between {spec.low:g} and {spec.high:g} (got {raw}).")
    return value


def operations_validate(raw: Any) -> list[dict[str, Any]]:
    """The chain as recorded: a list of {"op", "params"} with every parameter explicit and checked. Raises
    EnhanceRefused with a message naming the step and parameter at fault."""
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise EnhanceRefused('Give the operations as a list of {"op": name, "params": {...}}.')
    if not raw:
        raise EnhanceRefused("Add at least one operation.")
    if len(raw) > MAX_OPERATIONS:
        raise EnhanceRefused(f"At most {MAX_OPERATIONS} operations in one chain.")
    chain: list[dict[str, Any]] = []
    for position, step in enumerate(raw, start=1):
        if not isinstance(step, Mapping) or not isinstance(step.get("op"), str):
            raise EnhanceRefused(f'Step {position}: give it as {{"op": name, "params": {{...}}}}.')
        name = step["op"]
        spec = OPERATIONS.get(name)
        if spec is None:
            raise EnhanceRefused(f"Step {position}: unknown operation {name!r}; rfr offers {', '.join(OPERATIONS)}.")
        params = step.get("params") or {}
        if not isinstance(params, Mapping):
            raise EnhanceRefused(f"Step {position} ({name}): params must be an object.")
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise EnhanceRefused(f"Step {position} ({name}): unknown parameter {', '.join(map(str, unknown))}.")
        values: dict[str, Any] = {}
        for pname, pspec in spec.params.items():
            if params.get(pname) is None:
                if pspec.default is None:
                    raise EnhanceRefused(f"Step {position} ({name}): {pname} is required.")
                values[pname] = pspec.default
            else:
                values[pname] = _param_value(f"Step {position} ({name})", pname, pspec, params[pname])
        chain.append({"op": name, "params": values})
    return chain


_threads_lock = threading.Lock()


@contextmanager
def _single_threaded() -> Iterator[None]:
    """OpenCV on one thread while a chain runs, so that results never depend on how work was split."""
    with _threads_lock:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            yield
        finally:
            cv2.setNumThreads(previous)


def chain_apply(image: np.ndarray, operations: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Run a chain on a BGR uint8 image; the input is never modified. The chain is validated first."""
    chain = operations_validate(operations)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EnhanceRefused("Enhancement works on 8-bit colour images.")
    result = image.copy()
    with _single_threaded():
        for position, step in enumerate(chain, start=1):
            limit = HEAVY_MAX_PIXELS.get(step["op"])
            pixels = result.shape[0] * result.shape[1]
            if limit is not None and pixels > limit:
                raise EnhanceRefused(
                    f"Step {position} ({step['op']}): works on at most {limit / 1e6:.1f} million pixels and the image"
                    f" at this step has {pixels / 1e6:.1f} million. Crop to the face first (or resize down)."
                )
            try:
                result = OPERATIONS[step["op"]].apply(result, step["params"])
            except EnhanceRefused as exc:
                raise EnhanceRefused(f"Step {position} ({step['op']}): {exc.message}") from None
            if min(result.shape[:2]) < 1:
                raise EnhanceRefused(f"Step {position} ({step['op']}) left no image.")
    return np.ascontiguousarray(result)


def image_png_bytes(image: np.ndarray) -> bytes:
    """The derived image as stored: PNG (lossless), fixed compression level, no metadata."""
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode the derived image")
    return buffer.tobytes()


def chain_environment() -> dict[str, Any]:
    """What made the bytes, recorded with the chain: rfr's operation version and the library versions."""
    return {"enhance_version": ENHANCE_VERSION, "opencv": cv2.__version__, "numpy": np.__version__}


def operations_catalogue() -> list[dict[str, Any]]:
    """The operations and their parameters, for the builder page and the API documentation."""
    return [
        {
            "op": spec.name,
            "label": spec.label,
            "description": spec.description,
            "params": [
                {
                    "name": name,
                    "label": p.label,
                    "kind": p.kind,
                    "default": p.default,
                    "min": p.low,
                    "max": p.high,
                    "choices": list(p.choices),
                }
                for name, p in spec.params.items()
            ],
        }
        for spec in OPERATIONS.values()
    ]


def operation_describe(step: Mapping[str, Any]) -> str:
    """One step in words with all its parameters, e.g. "Gamma: gamma 1.5"."""
    spec = OPERATIONS.get(str(step.get("op")))
    label = spec.label if spec else str(step.get("op"))
    params = dict(step.get("params") or {})
    # In the operation's own order (a database may store the keys of a JSON object in another order).
    names = [name for name in (spec.params if spec else {}) if name in params]
    names += sorted(name for name in params if name not in names)
    return f"{label}: " + ", ".join(f"{name.replace('_', ' ')} {params[name]}" for name in names)
