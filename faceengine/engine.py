"""FaceEngine: one object per process that turns images into faces with templates and quality."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from faceengine.align import ALIGNED_SIZE, ARCFACE_TEMPLATE_112, align_face, similarity_transform
from faceengine.detector import DetectedFace, YuNetDetector, inter_eye
from faceengine.errors import UnsupportedArchitecture
from faceengine.imageio import DecodedImage, ImageLimits, decode_image_reduced
from faceengine.packs import ModelPack, load_pack
from faceengine.quality import MANUAL_LANDMARKS, FaceQuality, assess_quality, usability_order
from faceengine.recogniser import OnnxRuntimeRecogniser, OpenCvDnnRecogniser, Recogniser, l2_normalise

RECOGNISER_BACKENDS = ("onnxruntime", "opencv")
DETECTOR_BACKENDS = ("onnxruntime", "opencv")
# Chosen per model by bench/engine on the 2-core reference machine (docs/evaluation.md): onnxruntime runs
# YuNet faster than cv2.dnn, cv2.dnn runs SFace faster than onnxruntime, and both choices leave the
# templates unchanged (cosine ≥ 0.9999 against the reference path).
DEFAULT_DETECTOR_BACKEND = "onnxruntime"
DEFAULT_RECOGNISER_BACKEND = "opencv"
# Faces with eyes closer than this get templates averaged over views of the face re-detected at these
# enlargements (FaceEngine). 32 rather than the "small" warning's 24: a face degraded to 20 px can measure 24 px
# or more on its loose landmarks, and on LFW at 20 and 32 px and CelebA identification 32 measured better
# (docs/evaluation.md). Faces of 32 px and more keep exactly their one-view templates.
SMALL_FACE_VIEWS_IED = 32.0
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


# A face is aligned from a reduced decode only where its eyes are at least this far apart there (twice the
# aligned template's 35 px), so the 112×112 crop is still a reduction: templates then match a full-size
# decode's (cosine ≥ 0.999 on bench.probes' large photo). Smaller faces are aligned from a larger decode.
ALIGN_MIN_EYE_PX = 70.0

# The stages `analyse_encoded` reports, in order.
STAGE_DECODING, STAGE_DETECTING, STAGE_ENCODING = "decoding", "detecting", "encoding"


@dataclass(frozen=True)
class EncodedAnalysis:
    """The faces of an encoded image, in full-image coordinates, and how it was decoded."""

    faces: list[AnalysedFace]
    width: int  # the upright full image
    height: int
    detect_factor: int  # the JPEG reduction the detector saw (1: full size)
    align_factors: tuple[int, ...]  # the reductions the faces were aligned from


def _eye_distance(landmarks: np.ndarray) -> float:
    return float(np.hypot(*(landmarks[1] - landmarks[0])))


def _align_factor(eye_distance: float, available: int) -> int:
    """The largest JPEG reduction, up to `available`, that keeps a face's eyes ALIGN_MIN_EYE_PX apart."""
    return next((f for f in (8, 4, 2) if f <= available and eye_distance >= ALIGN_MIN_EYE_PX * f), 1)


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

    def analyse_encoded(
        self,
        data: bytes,
        limits: ImageLimits | None = None,
        *,
        on_stage: Callable[[str], None] | None = None,
    ) -> EncodedAnalysis:
        """Every face of an encoded image (a file's bytes), decoding no more pixels than needed.

        A large JPEG is decoded at reduced scale (JPEG DCT scaling) for detection, keeping at least the
        detector's working size, so a 7500×5000 photo costs a fraction of a full decode; each face is then
        aligned from that decode when it is large enough there, and otherwise from one decode at the scale its
        smallest face needs (full size at most). Boxes, landmarks and quality are in full-image pixels, as
        `analyse` on a full decode gives them. `on_stage` is called with each stage's name as it starts.
        """
        report = on_stage or (lambda stage: None)
        report(STAGE_DECODING)
        decoded = decode_image_reduced(data, limits, reduce_to=self.detector.max_side)
        report(STAGE_DETECTING)
        found = self.detect(decoded.pixels)
        # `replace` keeps whatever else the detector says about a face; only coordinates change scale.
        detections = [
            replace(
                face,
                box=(
                    float(decoded.to_full(np.array([face.box[0]]))[0]),
                    float(decoded.to_full(np.array([face.box[1]]))[0]),
                    face.box[2] * decoded.factor,
                    face.box[3] * decoded.factor,
                ),
                landmarks=decoded.to_full(face.landmarks),
            )
            for face in found
        ]
        report(STAGE_ENCODING)
        sources: dict[int, DecodedImage] = {decoded.factor: decoded}
        # The reduction each face can be aligned from: the largest that keeps its eyes ALIGN_MIN_EYE_PX apart.
        wanted = [_align_factor(_eye_distance(d.landmarks), decoded.factor) for d in detections]
        finer = min(wanted, default=decoded.factor)
        if finer < decoded.factor:
            # One more decode, at the scale the smallest face needs; larger faces keep the first decode.
            longer = max(decoded.full_width, decoded.full_height)
            extra = decode_image_reduced(data, limits, reduce_to=-(-longer // finer))
            sources[extra.factor] = extra
            finer = extra.factor
        factors = [decoded.factor if w >= decoded.factor else finer for w in wanted]
        crops = (
            np.stack(
                [
                    align_face(sources[f].pixels, sources[f].from_full(d.landmarks))
                    for d, f in zip(detections, factors, strict=True)
                ]
            )
            if detections
            else np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8)
        )
        # Small faces get their averaged views (`templates`) from the image they were aligned from. Such a
        # face always comes from the full-size decode (factor 1, full-image coordinates): a face aligned from a
        # reduced decode has its eyes at least ALIGN_MIN_EYE_PX apart there, far above the views' cutoff.
        templates = self.templates([sources[f].pixels for f in factors], detections, crops)
        faces = [
            AnalysedFace(
                detection=face,
                aligned=crop,
                template=template,
                quality=assess_quality(face.landmarks, crop, face.score),
            )
            for face, crop, template in zip(detections, crops, templates, strict=True)
        ]
        return EncodedAnalysis(
            faces=rank_faces(faces),  # most usable first, uncertain detections last, as `analyse` lists them
            width=decoded.full_width,
            height=decoded.full_height,
            detect_factor=decoded.factor,
            align_factors=tuple(sorted(set(factors))),
        )

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

    def analyse_landmarks(self, image_bgr: np.ndarray, points: np.ndarray) -> AnalysedFace:
        """A face from five points a person placed (image-left eye, image-right eye, nose tip, image-left and
        image-right mouth corner) where the detector found none: aligned and embedded exactly as a detected
        face. There is no detector score (0.0); the quality carries the `manual_landmarks` warning instead of
        the detector's, and the box is the area the aligned crop covers, within the image."""
        landmarks = np.asarray(points, dtype=np.float32).reshape(5, 2)
        x, y, w, h = landmarks_box(landmarks)
        height, width = image_bgr.shape[:2]
        x0, y0 = max(0.0, x), max(0.0, y)
        box = (x0, y0, min(float(width), x + w) - x0, min(float(height), y + h) - y0)
        face = DetectedFace(box=box, landmarks=landmarks, score=0.0)
        crop = self.align(image_bgr, [face])
        template = self.embed(crop)[0]
        quality = assess_quality(landmarks, crop[0], 0.0)
        kept = tuple(code for code in quality.warnings if code != "low_detector_score")
        return AnalysedFace(
            detection=face,
            aligned=crop[0],
            template=template,
            quality=replace(quality, warnings=(*kept, MANUAL_LANDMARKS)),
        )


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


def landmarks_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """[x, y, w, h] of the image area that alignment maps onto the 112×112 crop, for five given landmarks."""
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), ARCFACE_TEMPLATE_112)
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [ALIGNED_SIZE, 0, 1], [0, ALIGNED_SIZE, 1], [ALIGNED_SIZE, ALIGNED_SIZE, 1]])
    mapped = corners @ inverse.T
    x0, y0 = mapped.min(axis=0)
    x1, y1 = mapped.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


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
