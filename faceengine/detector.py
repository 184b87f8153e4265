"""YuNet face detection: every face with its box, five landmarks and score, at any image size."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceengine.runtime import OnnxSession, make_symbolic


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x, y, width, height in source-image pixels
    landmarks: np.ndarray  # (5, 2) float32: image-left eye, image-right eye, nose, mouth left, mouth right
    score: float

    def to_dict(self) -> dict[str, object]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
        }


def symbolic_size(model: Any) -> None:
    """YuNet with symbolic height and width: its reshapes use -1 and its upsampling uses scales, so only the
    declared input and output shapes pin it to 640×640."""
    (image_input,) = model.graph.input
    dims = image_input.type.tensor_type.shape.dim
    for index, name in ((2, "height"), (3, "width")):
        make_symbolic(dims[index], name)
    for output in model.graph.output:
        make_symbolic(output.type.tensor_type.shape.dim[1], f"{output.name}_anchors")


def inter_eye(face: DetectedFace) -> float:
    return float(np.hypot(*(face.landmarks[1] - face.landmarks[0])))


def scale_face(face: DetectedFace, scale: float) -> DetectedFace:
    return DetectedFace(
        box=(face.box[0] * scale, face.box[1] * scale, face.box[2] * scale, face.box[3] * scale),
        landmarks=(face.landmarks * scale).astype(np.float32),
        score=face.score,
    )


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def overlaps(face: DetectedFace, others: list[DetectedFace], iou: float = 0.3) -> bool:
    return any(box_iou(face.box, other.box) > iou for other in others)


class YuNetOnnxRuntime:
    """YuNet on onnxruntime with OpenCV's post-processing (face_detect.cpp) re-implemented in NumPy."""

    strides = (8, 16, 32)

    def __init__(self, model_path: Path, *, score_threshold: float, nms_threshold: float, top_k: int, threads: int):
        self._session = OnnxSession(model_path, threads=threads, edit=symbolic_size)
        self._outputs = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in self.strides]
        self._score_threshold, self._nms_threshold, self._top_k = score_threshold, nms_threshold, top_k

    def __call__(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> np.ndarray:
        threshold = self._score_threshold if score_threshold is None else score_threshold
        height, width = image_bgr.shape[:2]
        pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :height, :width] = image_bgr.transpose(2, 0, 1)
        results = dict(zip(self._outputs, self._session.run(self._outputs, {"input": blob}), strict=True))
        rows = []
        for stride in self.strides:
            cols = pad_w // stride
            cls = np.clip(results[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
            obj = np.clip(results[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= threshold)[0]
            if not len(keep):
                continue
            bbox = results[f"bbox_{stride}"].reshape(-1, 4)[keep]
            kps = results[f"kps_{stride}"].reshape(-1, 10)[keep]
            col = (keep % cols).astype(np.float32)[:, None]
            row = (keep // cols).astype(np.float32)[:, None]
            centre_x = (col[:, 0] + bbox[:, 0]) * stride
            centre_y = (row[:, 0] + bbox[:, 1]) * stride
            w, h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            landmarks = np.empty((len(keep), 10), dtype=np.float32)
            landmarks[:, 0::2] = (kps[:, 0::2] + col) * stride
            landmarks[:, 1::2] = (kps[:, 1::2] + row) * stride
            rows.append(
                np.column_stack([centre_x - w / 2, centre_y - h / 2, w, h, landmarks, score[keep]]).astype(np.float32)
            )
        if not rows:
            return np.zeros((0, 15), dtype=np.float32)
        faces = np.concatenate(rows)
        if len(faces) > 1:
            boxes = [[int(x), int(y), int(w), int(h)] for x, y, w, h in faces[:, :4]]
            keep_idx = cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), threshold, self._nms_threshold, top_k=self._top_k)
            faces = faces[np.asarray(keep_idx, dtype=np.int64).reshape(-1)]
        return faces


class YuNetDetector:
    """Runs YuNet on either runtime: onnxruntime (the engine's default, faster here; see bench/engine), with the
    graph's fixed 640×640 input made symbolic at load and the outputs decoded in NumPy as OpenCV does, or
    OpenCV's FaceDetectorYN (`backend="opencv"`), which re-plans the network for each image size itself.
    Images whose longer side exceeds `max_side` are detected on a downscaled copy and the coordinates mapped
    back, bounding time and memory; tight crops where the face fills the frame get a second pass on a padded
    copy, since the detector needs some context around a face.

    Small faces: YuNet misses many faces under about 20 px between the eyes, and places the landmarks of
    the ones it finds loosely. When the first pass finds no face and the image is small enough, the image is
    enlarged `upscale` times (cubic interpolation, longer side at most `upscale_max_side`) and detected
    again. When it finds only faces whose eyes are closer than `small_face_ied` pixels (a distant scene, a
    CCTV still), each is re-detected on an enlarged copy of its surroundings, for better landmarks. A tiny
    image (longer side at most `tiny_image_side`) in which no pass finds a face is most likely a crop of
    one: its best candidate scoring at least `tiny_image_score_threshold` on copies enlarged
    `tiny_image_factors` times is kept, with that low score. An
    image with a larger face takes no second look (a small background face beside it stays as the first
    pass found it), so ordinary photos cost next to nothing more (bench/engine). Measured on LFW pairs
    degraded to 12 px between the eyes in docs/evaluation.md.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int = 2048,
        large_face_side: int = 448,
        backend: str = "opencv",
        threads: int = 0,
        small_face_ied: float = 18.0,
        upscale: float = 2.0,
        upscale_max_side: int = 1280,
        tiny_image_side: int = 256,
        tiny_image_score_threshold: float = 0.35,
        tiny_image_factors: tuple[float, ...] = (2.0, 3.0, 4.0),
    ) -> None:
        self._model_path = str(model_path)
        self._score_threshold = score_threshold
        self._nms_threshold = nms_threshold
        self._top_k = top_k
        self.max_side = max_side
        self.large_face_side = large_face_side
        self.small_face_ied = small_face_ied
        self.upscale = upscale
        self.upscale_max_side = upscale_max_side
        self.tiny_image_side = tiny_image_side
        self.tiny_image_score_threshold = tiny_image_score_threshold
        self.tiny_image_factors = tiny_image_factors
        self._lock = threading.Lock()  # FaceDetectorYN holds per-size state: one caller at a time
        self.backend = backend
        self._input_size = (320, 320)
        if backend == "onnxruntime":
            self._ort = YuNetOnnxRuntime(
                model_path, score_threshold=score_threshold, nms_threshold=nms_threshold, top_k=top_k, threads=threads
            )
        elif backend == "opencv":
            self._detector = cv2.FaceDetectorYN.create(
                self._model_path, "", self._input_size, score_threshold, nms_threshold, top_k
            )
        else:
            raise ValueError(f"Unknown detector backend {backend!r}; use 'opencv' or 'onnxruntime'.")

    def detect(self, image_bgr: np.ndarray, *, pad_retry: bool = True) -> list[DetectedFace]:
        faces = self._detect_scaled(image_bgr)
        if not faces and pad_retry:
            faces = self._detect_padded(image_bgr)
        faces = [self._refine_large(image_bgr, face) for face in faces]
        faces = self._detect_small(image_bgr, faces, pad_retry=pad_retry)
        faces.sort(key=lambda f: (-f.box[2] * f.box[3], f.box[0], f.box[1]))
        return faces

    def _detect_scaled(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        height, width = image_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = image_bgr
        if scale < 1.0:
            work = cv2.resize(image_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        raw = self._run(work)
        return [self._to_face(row, 1.0 / scale, 0.0, 0.0) for row in raw]

    def _detect_small(self, image_bgr: np.ndarray, faces: list[DetectedFace], *, pad_retry: bool) -> list[DetectedFace]:
        """A second look on an enlarged copy when the first pass found nothing or only small faces (see the
        class): the whole image when nothing was found, else the region around each small face."""
        if faces:
            if max(inter_eye(face) for face in faces) >= self.small_face_ied or self.upscale < 1.5:
                return faces
            return [self._refine_small(image_bgr, face) for face in faces]
        height, width = image_bgr.shape[:2]
        factor = min(self.upscale, self.upscale_max_side / max(height, width))
        if factor < 1.5:
            return faces
        enlarged = cv2.resize(image_bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        found = self._detect_scaled(enlarged)
        if not found and pad_retry:
            found = self._detect_padded(enlarged)
        if not found and max(height, width) <= self.tiny_image_side:
            return self._best_low_score_scales(image_bgr)
        return [scale_face(face, 1.0 / factor) for face in found]

    def _best_low_score_scales(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        """A tiny image's best low-scored candidate over copies enlarged 2, 3 and 4 times: it is most likely a
        crop of a face at a size not known in advance, and the detector's response varies with that size."""
        best: DetectedFace | None = None
        for factor in self.tiny_image_factors:
            enlarged = cv2.resize(image_bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            for face in self._best_low_score(enlarged):
                if best is None or face.score > best.score:
                    best = scale_face(face, 1.0 / factor)
        return [best] if best is not None else []

    def _refine_small(self, image_bgr: np.ndarray, face: DetectedFace) -> DetectedFace:
        """The same face re-detected on an enlarged copy of its surroundings: its box and landmarks from there,
        its score the lower of the two (enlarging a blob makes it look more like a face)."""
        best = self.redetect_around(image_bgr, face, self.upscale)
        if best is None:
            return face
        return replace(best, score=min(best.score, face.score))

    def redetect_around(self, image_bgr: np.ndarray, face: DetectedFace, factor: float) -> DetectedFace | None:
        """The same face detected again on a copy of its surroundings enlarged `factor` times (1 = as is),
        mapped back to source pixels; None when that pass does not find it."""
        x, y, w, h = face.box
        half = max(2.0 * max(w, h), 16.0)
        cx, cy = x + w / 2, y + h / 2
        height, width = image_bgr.shape[:2]
        x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
        x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
        region = image_bgr[y0:y1, x0:x1]
        if factor != 1:
            region = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        found = self._detect_scaled(region) or self._detect_padded(region)
        mapped = [self._to_face(self._row(other), 1.0 / factor, x0, y0) for other in found]
        same = [other for other in mapped if box_iou(other.box, face.box) > 0.3]
        if not same:
            return None
        return max(same, key=lambda other: box_iou(other.box, face.box))

    def _best_low_score(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        """The best candidate at the tiny-image threshold, as is or on a padded copy; at most one face."""
        height, width = image_bgr.shape[:2]
        pad = max(height, width) // 3
        padded = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        low = self.tiny_image_score_threshold
        candidates = [self._to_face(row, 1.0, 0.0, 0.0) for row in self._run(image_bgr, low)]
        candidates += [self._to_face(row, 1.0, -pad, -pad) for row in self._run(padded, low)]
        inside = [f for f in candidates if 0 < f.box[0] + f.box[2] / 2 < width and 0 < f.box[1] + f.box[3] / 2 < height]
        return [max(inside, key=lambda f: f.score)] if inside else []

    def _refine_large(self, image_bgr: np.ndarray, face: DetectedFace) -> DetectedFace:
        """Re-detect a very large face on a reduced copy of its surroundings.

        YuNet's anchors top out well below the size of a face that fills a portrait; its box and landmarks
        for such faces drift (the box rides up the forehead). Seen at a size it was trained on, the same
        face is located precisely, which is what alignment needs.
        """
        x, y, w, h = face.box
        side = max(w, h)
        if side <= self.large_face_side:
            return face
        target = 0.75 * self.large_face_side
        scale = target / side
        cx, cy = x + w / 2, y + h / 2
        half = side * 1.25
        x0, y0 = round(cx - half), round(cy - half)
        x1, y1 = round(cx + half), round(cy + half)
        height, width = image_bgr.shape[:2]
        pad = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
        region = image_bgr[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
        if any(pad):
            region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        small = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = [self._to_face(row, 1.0 / scale, x0, y0) for row in self._run(small)]
        if not found:
            return face
        best = min(found, key=lambda f: float(np.abs(f.landmarks - face.landmarks).sum()))
        # Accept the refinement only if it is the same face (nose within half the eye distance).
        eye_distance = float(np.hypot(*(face.landmarks[1] - face.landmarks[0])))
        if float(np.hypot(*(best.landmarks[2] - face.landmarks[2]))) > 0.5 * max(eye_distance, 1.0):
            return face
        return best

    def _detect_padded(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        height, width = image_bgr.shape[:2]
        pad = max(height, width) // 3
        padded = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        scale = min(1.0, self.max_side / max(padded.shape[:2]))
        if scale < 1.0:
            size = (round(padded.shape[1] * scale), round(padded.shape[0] * scale))
            padded = cv2.resize(padded, size, interpolation=cv2.INTER_AREA)
        raw = self._run(padded)
        faces = [self._to_face(row, 1.0 / scale, -pad, -pad) for row in raw]
        # A face found only in the padding would be an artefact of the border.
        return [f for f in faces if f.box[0] + f.box[2] / 2 > 0 and f.box[1] + f.box[3] / 2 > 0
                and f.box[0] + f.box[2] / 2 < width and f.box[1] + f.box[3] / 2 < height]  # fmt: skip

    def _run(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> np.ndarray:
        if self.backend == "onnxruntime":
            return self._ort(image_bgr, score_threshold)
        height, width = image_bgr.shape[:2]
        with self._lock:
            if self._input_size != (width, height):  # re-planning the network for a new size is costly
                self._detector.setInputSize((width, height))
                self._input_size = (width, height)
            if score_threshold is None:
                _, faces = self._detector.detect(image_bgr)
            else:
                self._detector.setScoreThreshold(score_threshold)
                try:
                    _, faces = self._detector.detect(image_bgr)
                finally:
                    self._detector.setScoreThreshold(self._score_threshold)
        if faces is None:
            return np.zeros((0, 15), dtype=np.float32)
        return faces

    @staticmethod
    def _row(face: DetectedFace) -> np.ndarray:
        return np.array([*face.box, *face.landmarks.reshape(-1), face.score], dtype=np.float32)

    @staticmethod
    def _to_face(row: np.ndarray, scale: float, shift_x: float, shift_y: float) -> DetectedFace:
        x, y, w, h = (float(v) * scale for v in row[:4])
        landmarks = row[4:14].reshape(5, 2).astype(np.float32) * scale
        landmarks[:, 0] += shift_x
        landmarks[:, 1] += shift_y
        return DetectedFace(box=(x + shift_x, y + shift_y, w, h), landmarks=landmarks, score=float(row[14]))
