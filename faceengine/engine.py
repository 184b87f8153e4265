"""FaceEngine: one object per process that turns images into faces with templates and quality."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceengine.align import ALIGNED_SIZE, align_face
from faceengine.detector import DetectedFace, YuNetDetector, inter_eye
from faceengine.errors import UnsupportedArchitecture
from faceengine.packs import ModelPack, load_pack
from faceengine.quality import FaceQuality, assess_quality, usability_order
from faceengine.recogniser import OnnxRuntimeRecogniser, OpenCvDnnRecogniser, Recogniser, l2_normalise

RECOGNISER_BACKENDS = ("onnxruntime", "opencv")
DETECTOR_BACKENDS = ("onnxruntime", "opencv")
# Chosen per model by bench/engine on the 2-core reference machine (docs/evaluation.md): onnxruntime runs
# YuNet faster than cv2.dnn, cv2.dnn runs SFace faster than onnxruntime, and both choices leave the
# templates unchanged (cosine ≥ 0.9999 against the reference path).
DEFAULT_DETECTOR_BACKEND = "onnxruntime"
DEFAULT_RECOGNISER_BACKEND = "opencv"
# Faces with eyes closer than this (the "small" quality warning, faceengine.quality) get templates averaged
# over views of the face re-detected at these enlargements (FaceEngine).
SMALL_FACE_VIEWS_IED = 24.0
SMALL_FACE_VIEW_FACTORS = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class AnalysedFace:
    detection: DetectedFace
    aligned: np.ndarray  # 112×112 BGR crop
    template: np.ndarray  # (D,) float32, unit length
    quality: FaceQuality

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.detection.box

    @property
    def landmarks(self) -> np.ndarray:
        return self.detection.landmarks

    @property
    def score(self) -> float:
        return self.detection.score


def _default_threads() -> int:
    return max(1, os.cpu_count() or 1)


class FaceEngine:
    """Detection and recognition are separate models; this class composes them.

    Templates are the L2-normalised sum of the embeddings of the aligned crop and its mirror image: the
    mirror is the same face, and averaging the two removes some pose and lighting asymmetry (measured on LFW
    in docs/evaluation.md).

    A small face (eyes closer than `small_face_views_ied` pixels) is located loosely: a one-pixel landmark
    error is a tenth of its eye distance, and where the detector puts the landmarks changes with the scale it
    sees the face at. Its template is the average over views: the crops aligned on the landmarks of the same
    face re-detected on copies of its surroundings enlarged `small_face_view_factors` times
    (`YuNetDetector.redetect_around`; the given landmarks when no view finds it). The errors of the views
    partly cancel. Larger faces' templates are unchanged.
    """

    def __init__(
        self,
        pack: ModelPack,
        *,
        threads: int = 0,
        detector_backend: str = DEFAULT_DETECTOR_BACKEND,
        recogniser_backend: str = DEFAULT_RECOGNISER_BACKEND,
        flip_average: bool = True,
        batch_size: int = 32,
        detect_max_side: int = 2048,
        small_face_views_ied: float = SMALL_FACE_VIEWS_IED,
        small_face_view_factors: tuple[float, ...] = SMALL_FACE_VIEW_FACTORS,
    ) -> None:
        if pack.detector.architecture != "yunet":
            raise UnsupportedArchitecture(
                f"Pack {pack.key}: detector architecture '{pack.detector.architecture}' is not supported."
            )
        if pack.recogniser.architecture not in {"sface", "arcface"}:
            raise UnsupportedArchitecture(
                f"Pack {pack.key}: recogniser architecture '{pack.recogniser.architecture}' is not supported."
            )
        if recogniser_backend not in RECOGNISER_BACKENDS:
            raise ValueError(f"recogniser_backend must be one of {RECOGNISER_BACKENDS}")
        if detector_backend not in DETECTOR_BACKENDS:
            raise ValueError(f"detector_backend must be one of {DETECTOR_BACKENDS}")
        self.pack = pack
        self.threads = threads or _default_threads()
        self.flip_average = flip_average
        self.small_face_views_ied = small_face_views_ied
        self.small_face_view_factors = small_face_view_factors
        self.batch_size = batch_size
        self.recogniser_backend = recogniser_backend
        self.detector_backend = detector_backend
        self._set_opencv_threads(self.threads)
        det_opts = pack.detector.options
        self.detector = YuNetDetector(
            pack.file_path(pack.detector),
            score_threshold=float(det_opts.get("score_threshold", 0.6)),
            nms_threshold=float(det_opts.get("nms_threshold", 0.3)),
            max_side=detect_max_side,
            backend=detector_backend,
            threads=self.threads,
        )
        rec_opts = pack.recogniser.options
        normalisation = rec_opts.get("input_mean_scale", [0.0, 1.0])
        backend_class = OnnxRuntimeRecogniser if recogniser_backend == "onnxruntime" else OpenCvDnnRecogniser
        self.recogniser: Recogniser = backend_class(
            pack.file_path(pack.recogniser),
            embedding_dim=pack.embedding_dim,
            threads=self.threads,
            rgb=str(rec_opts.get("input_colour", "RGB")).upper() == "RGB",
            mean=float(normalisation[0]),
            scale=float(normalisation[1]),
        )

    @staticmethod
    def _set_opencv_threads(threads: int) -> None:
        cv2.setNumThreads(threads)
        # OpenCV 5 warns on every detector creation that its new graph engine ignores target hints.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    # -- stages ---------------------------------------------------------------------------------------
    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        return self.detector.detect(image_bgr)

    @staticmethod
    def align(image_bgr: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8)
        return np.stack([align_face(image_bgr, face.landmarks) for face in faces])

    @staticmethod
    def align_many(images_bgr: Sequence[np.ndarray], faces: Sequence[DetectedFace]) -> np.ndarray:
        """One aligned crop per (image, face) pair."""
        return np.stack([align_face(image, face.landmarks) for image, face in zip(images_bgr, faces, strict=True)])

    def embed(self, crops_bgr: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) aligned crops → (N, D) unit templates, run in batches of `batch_size`."""
        if len(crops_bgr) == 0:
            return np.zeros((0, self.pack.embedding_dim), dtype=np.float32)
        if self.flip_average:
            # Crop and mirror go through the network in the same batch, interleaved per chunk.
            outputs = []
            half = max(1, self.batch_size // 2)
            for start in range(0, len(crops_bgr), half):
                chunk = crops_bgr[start : start + half]
                both = np.concatenate([chunk, chunk[:, :, ::-1]])
                raw = l2_normalise(self.recogniser.embed(both))
                outputs.append(raw[: len(chunk)] + raw[len(chunk) :])
            return l2_normalise(np.concatenate(outputs))
        outputs = [
            self.recogniser.embed(crops_bgr[start : start + self.batch_size])
            for start in range(0, len(crops_bgr), self.batch_size)
        ]
        return l2_normalise(np.concatenate(outputs))

    def templates(
        self, images_bgr: Sequence[np.ndarray], faces: Sequence[DetectedFace], crops_bgr: np.ndarray
    ) -> np.ndarray:
        """Templates of the faces (one image per face, and its aligned crop): `embed`, or for a small face the
        average over its views (see the class)."""
        templates = self.embed(crops_bgr)
        view_face, view_crops = [], []
        for index, (image, face) in enumerate(zip(images_bgr, faces, strict=True)):
            if inter_eye(face) >= self.small_face_views_ied:
                continue
            for factor in self.small_face_view_factors:
                view = self.detector.redetect_around(image, face, factor)
                if view is not None:
                    view_face.append(index)
                    view_crops.append(align_face(image, view.landmarks))
        if view_crops:
            view_templates = self.embed(np.stack(view_crops))
            for index in sorted(set(view_face)):
                mine = [i for i, owner in enumerate(view_face) if owner == index]
                templates[index] = l2_normalise(view_templates[mine].sum(axis=0, keepdims=True))[0]
        return templates

    # -- whole pipeline -------------------------------------------------------------------------------
    def analyse(self, image_bgr: np.ndarray, faces: Sequence[DetectedFace] | None = None) -> list[AnalysedFace]:
        """Every face in the image, most usable first with uncertain detections last (`rank_faces`), or the
        given detections in the order given, each with template and quality."""
        detections = list(self.detect(image_bgr) if faces is None else faces)
        crops = self.align(image_bgr, detections)
        templates = self.templates([image_bgr] * len(detections), detections, crops)
        analysed = [
            AnalysedFace(
                detection=face,
                aligned=crop,
                template=template,
                quality=assess_quality(face.landmarks, crop, face.score),
            )
            for face, crop, template in zip(detections, crops, templates, strict=True)
        ]
        return rank_faces(analysed) if faces is None else analysed

    def analyse_many(self, images_bgr: Sequence[np.ndarray]) -> list[list[AnalysedFace]]:
        """Detect per image, then embed all faces of all images in shared batches."""
        detections = [self.detect(image) for image in images_bgr]
        crops_per_image = [self.align(image, faces) for image, faces in zip(images_bgr, detections, strict=True)]
        counts = [len(c) for c in crops_per_image]
        all_crops = (
            np.concatenate(crops_per_image) if sum(counts) else np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
        )
        images_per_face = [image for image, faces in zip(images_bgr, detections, strict=True) for _ in faces]
        templates = self.templates(images_per_face, [face for faces in detections for face in faces], all_crops)
        results: list[list[AnalysedFace]] = []
        offset = 0
        for faces, crops, count in zip(detections, crops_per_image, counts, strict=True):
            results.append(
                [
                    AnalysedFace(
                        detection=face,
                        aligned=crop,
                        template=templates[offset + i],
                        quality=assess_quality(face.landmarks, crop, face.score),
                    )
                    for i, (face, crop) in enumerate(zip(faces, crops, strict=True))
                ]
            )
            offset += count
        return results

    def primary_face(self, image_bgr: np.ndarray) -> AnalysedFace | None:
        """The main face of a single-subject photo (see `primary_face_index`), or None if there is none."""
        detections = self.detect(image_bgr)
        index = primary_face_index(detections, image_bgr.shape)
        if index is None:
            return None
        return self.analyse(image_bgr, faces=[detections[index]])[0]

    def faces_in_region(self, image_bgr: np.ndarray, box: tuple[float, float, float, float]) -> list[DetectedFace]:
        """Detect inside a box a person drew where the detector missed a face (with a margin for context)."""
        height, width = image_bgr.shape[:2]
        x, y, w, h = box
        margin = 0.5 * max(w, h)
        x0, y0 = max(0, int(x - margin)), max(0, int(y - margin))
        x1, y1 = min(width, int(x + w + margin)), min(height, int(y + h + margin))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        region = image_bgr[y0:y1, x0:x1]
        # Small regions are upscaled so the detector sees the face at a size it was trained on.
        upscale = max(1.0, 160.0 / max(1, min(region.shape[:2])))
        if upscale > 1.0:
            region = cv2.resize(region, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        found = self.detector.detect(region)
        mapped = []
        for face in found:
            bx, by, bw, bh = face.box
            mapped.append(
                DetectedFace(
                    box=(bx / upscale + x0, by / upscale + y0, bw / upscale, bh / upscale),
                    landmarks=face.landmarks / upscale + np.array([x0, y0], dtype=np.float32),
                    score=face.score,
                )
            )
        # Keep the face whose centre lies inside the drawn box, the closest to the box centre first.
        cx, cy = x + w / 2, y + h / 2
        inside = [f for f in mapped if x <= f.box[0] + f.box[2] / 2 <= x + w and y <= f.box[1] + f.box[3] / 2 <= y + h]
        inside.sort(key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
        return inside


def rank_faces(faces: Sequence[AnalysedFace]) -> list[AnalysedFace]:
    """Most usable first (detector score, size, sharpness, pose: faceengine.quality), uncertain ones last."""
    return [faces[i] for i in usability_order([face.quality for face in faces])]


def primary_face_index(faces: Sequence[DetectedFace], image_shape: tuple[int, ...]) -> int | None:
    """The face a single-subject photo is about: the largest face nearest the centre.

    Used where one face per image is expected (verification pairs, gallery enrolment). Size dominates, but
    a face far from the centre is discounted, so a large bystander at the edge does not win.
    """
    if not faces:
        return None
    height, width = image_shape[:2]
    centre = np.array([width / 2.0, height / 2.0])
    diagonal = float(np.hypot(width, height))

    def weight(face: DetectedFace) -> float:
        x, y, w, h = face.box
        distance = float(np.hypot(*(np.array([x + w / 2, y + h / 2]) - centre))) / diagonal
        return (w * h) * float(np.exp(-((distance / 0.25) ** 2))) * face.score

    return max(range(len(faces)), key=lambda i: weight(faces[i]))


_engine_lock = threading.Lock()
_engines: dict[tuple[str, int, str, str], FaceEngine] = {}


def get_engine(
    pack_dir: Path,
    *,
    threads: int = 0,
    detector_backend: str = DEFAULT_DETECTOR_BACKEND,
    recogniser_backend: str = DEFAULT_RECOGNISER_BACKEND,
) -> FaceEngine:
    """The process's engine for a pack, created on first use; the pack is verified once, at load."""
    key = (str(Path(pack_dir).resolve()), threads, detector_backend, recogniser_backend)
    with _engine_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = FaceEngine(
                load_pack(Path(pack_dir)),
                threads=threads,
                detector_backend=detector_backend,
                recogniser_backend=recogniser_backend,
            )
            _engines[key] = engine
        return engine


def reset_engines() -> None:
    with _engine_lock:
        _engines.clear()
