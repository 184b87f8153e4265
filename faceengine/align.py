"""5-point similarity alignment to the 112×112 ArcFace template used by SFace and insightface packs."""

from __future__ import annotations

import cv2
import numpy as np

# Landmark order: image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ALIGNED_SIZE = 112


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping source onto target (Umeyama)."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp the face so its five landmarks sit on the template; returns a size×size BGR crop.

    A face more than four times the crop's size (eyes more than about 140 px apart) is first reduced by area
    averaging (the region the crop covers, not the whole image): a bilinear warp alone would sample only a few
    of its pixels, so the crop, and the template, would depend on sampling phase (aliasing) rather than on the
    face, and would differ between a full decode and a reduced one (faceengine.imageio.decode_image_reduced).
    Smaller faces, which is nearly every gallery and evaluation image (UTKFace's eyes are about 80 px apart,
    LFW's and CelebA's 30-70 px), are warped directly, so their templates are exactly those of earlier releases
    and of the stored evaluations.
    """
    template = ARCFACE_TEMPLATE_112 * (size / ALIGNED_SIZE)
    matrix = similarity_transform(landmarks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < ANTIALIAS_BELOW_SCALE:
        image_bgr, matrix = _reduce_region(image_bgr, matrix, size, scale)
    return cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


ANTIALIAS_BELOW_SCALE = 0.25


def _reduce_region(image_bgr: np.ndarray, matrix: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of the image the crop covers, area-reduced to the crop's scale, and the warp onto it."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inverse.T
    height, width = image_bgr.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image_bgr, matrix
    region = image_bgr[y0:y1, x0:x1]
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    reduced = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    # A reduced pixel's centre (u, v) is the region's point ((u + 0.5) / sx - 0.5 + x0, ...).
    to_image = np.array([[1 / sx, 0, 0.5 / sx - 0.5 + x0], [0, 1 / sy, 0.5 / sy - 0.5 + y0], [0, 0, 1]])
    return reduced, matrix @ to_image
