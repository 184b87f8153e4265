"""Video footage: inspect a file (refusing what cannot or must not be processed), sample its frames
deterministically, grab a frame at a time code, and find the faces of the sampled frames.

Decoding is PyAV's (the `av` wheel bundles FFmpeg). A source is a path or a binary file object (stored files are
opened as file objects; nothing here needs a local path). Frame indexes count decoded video frames from 0 and
times come from the stream's presentation timestamps with the first frame at 0 s, so a run resumed at
`start_index` yields exactly the frames, indexes and times a full run yields from there.

Tracking the faces across frames is faceengine.tracking, a pure function of what `video_faces` yields.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np

from faceengine.detector import DetectedFace, box_iou, inter_eye
from faceengine.engine import FaceEngine
from faceengine.errors import FaceEngineError
from faceengine.quality import FaceQuality, assess_quality
from faceengine.recogniser import l2_normalise

VideoSource = str | Path | IO[bytes]

# Sampling: about five frames a second finds every face that stays on screen for a fraction of a second, at a
# fifth of the cost of every frame of 25 fps footage. None samples every frame.
DEFAULT_SAMPLE_FPS = 5.0


class VideoRejected(FaceEngineError):
    """The file cannot be used as video evidence; nothing was processed. `code` is stable, `message` says what a
    person can do."""

    code = "video_rejected"


class EmptyVideo(VideoRejected):
    code = "empty_file"


class VideoTooLarge(VideoRejected):
    code = "file_too_large"


class CorruptVideo(VideoRejected):
    code = "corrupt_video"


class TruncatedVideo(VideoRejected):
    code = "truncated_video"


class UnsupportedVideo(VideoRejected):
    code = "unsupported_video"


class NoVideoStream(VideoRejected):
    code = "no_video_stream"


class VideoTooLong(VideoRejected):
    code = "video_too_long"


class VideoTooManyPixels(VideoRejected):
    code = "video_too_many_pixels"


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be at most. Defaults fit body-worn and CCTV exports; deployments set their own."""

    max_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 7680
    max_height: int = 4320
    max_pixels: int = 7680 * 4320  # per frame
    max_frames: int = 4 * 3600 * 60


@dataclass(frozen=True)
class VideoInfo:
    container: str  # FFmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "avi", "dav"
    codec: str  # FFmpeg's decoder name, e.g. "h264", "hevc", "mpeg4", "mjpeg", "vp9"
    width: int  # as stored (before rotation)
    height: int
    fps: float  # average frame rate
    duration_s: float
    frame_count: int  # counted from the demuxed packets, so exact unless `frame_count_estimated`
    rotation: int  # degrees the display matrix turns the picture (0, 90, 180, 270)
    frame_count_estimated: bool = False

    def sampled_count(self, sample_fps: float | None = DEFAULT_SAMPLE_FPS) -> int:
        """About how many frames `video_frames` yields at this rate: a progress total, not a promise."""
        if sample_fps is None or sample_fps <= 0 or self.fps <= sample_fps:
            return self.frame_count
        return max(1, min(self.frame_count, math.ceil(self.duration_s * sample_fps)))

    def to_dict(self) -> dict[str, object]:
        return {
            "container": self.container,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "duration_s": round(self.duration_s, 3),
            "frame_count": self.frame_count,
            "frame_count_estimated": self.frame_count_estimated,
            "rotation": self.rotation,
        }


@dataclass(frozen=True)
class VideoFrame:
    index: int  # decoded video frames from 0
    time_s: float  # from the first frame's presentation time
    image: np.ndarray = field(repr=False)  # BGR, upright (rotation applied)


@dataclass(frozen=True)
class VideoFace:
    """One face of a sampled frame: as `AnalysedFace` (box, landmarks, score, quality, crop), but `template` is
    None where the face was not embedded (see EMBED_INTERVAL_S)."""

    detection: DetectedFace
    aligned: np.ndarray = field(repr=False)  # 112×112 BGR crop
    template: np.ndarray | None = field(repr=False)  # (D,) float32, unit length; None: not embedded
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


@dataclass(frozen=True)
class FrameFaces:
    """The faces of one sampled frame (box, landmarks, score, quality, the 112×112 aligned crop and, where
    embedded, the unit template), in frame pixels."""

    index: int
    time_s: float
    width: int
    height: int
    faces: list[VideoFace]
    shot: int = 0  # 0 from the first frame, one more after each cut (`shot_cut`); tracks never cross a cut


# -- opening --------------------------------------------------------------------------------------------------
def _source_size(source: VideoSource) -> int | None:
    if isinstance(source, str | Path):
        return os.path.getsize(source)
    try:
        position = source.tell()
        source.seek(0, os.SEEK_END)
        size = source.tell()
        source.seek(position)
        return size
    except (OSError, AttributeError, ValueError):
        return None


def _rewind(source: VideoSource) -> VideoSource:
    if not isinstance(source, str | Path):
        source.seek(0)
    return source


def _open(source: VideoSource) -> Any:
    """An input container, with FFmpeg's errors turned into the rejection a person can act on."""
    try:
        return av.open(_rewind(source) if not isinstance(source, Path) else str(source), mode="r")
    except av.error.InvalidDataError as exc:
        raise CorruptVideo(
            "The file is not a video FFmpeg can read (damaged, incomplete, or not a video). Export it again "
            "from the source system."
        ) from exc
    except FileNotFoundError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedVideo(f"The file cannot be opened as video ({exc}).") from exc


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise NoVideoStream("The file holds no video stream (audio only, or not footage).")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        raise UnsupportedVideo("The video's codec is not supported: convert it to H.264 (MP4) and upload that.")
    return stream


def _rotation_of(frame: Any) -> int:
    try:
        return round(float(frame.rotation)) % 360
    except (AttributeError, TypeError, ValueError):
        return 0


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    # PyAV reports the display matrix's counter-clockwise angle; players turn the picture the other way.
    turns = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    code = turns.get((-rotation) % 360)
    return image if code is None else cv2.rotate(image, code)


def _time_base(stream: Any) -> Fraction:
    return Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def video_inspect(source: VideoSource, *, limits: VideoLimits | None = None) -> VideoInfo:
    """What the video is, or `VideoRejected` for what cannot or must not be processed.

    Demuxes every packet of the video stream (cheap: nothing is decoded) to count the frames exactly and to
    notice a file cut short, and decodes the first frame to prove the stream decodes.
    """
    limits = limits or VideoLimits()
    size = _source_size(source)
    if size == 0:
        raise EmptyVideo("The file is empty.")
    if size is not None and size > limits.max_bytes:
        raise VideoTooLarge(f"The file is {size / 1024**2:.0f} MB; the limit is {limits.max_bytes / 1024**2:.0f} MB.")
    container = _open(source)
    try:
        stream = _video_stream(container)
        codec_context = stream.codec_context
        width, height = int(codec_context.width or 0), int(codec_context.height or 0)
        if width <= 0 or height <= 0:
            raise CorruptVideo("The video stream has no picture size: the file is damaged or not footage.")
        if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
            raise VideoTooManyPixels(
                f"The video is {width}×{height} pixels; the limit is {limits.max_width}×{limits.max_height}."
            )
        fps = _fps(stream)
        time_base = _time_base(stream)
        declared_s = float(stream.duration * time_base) if stream.duration else 0.0
        if not declared_s and container.duration:
            declared_s = container.duration / 1_000_000
        if declared_s > limits.max_duration_s:
            raise VideoTooLong(_too_long(declared_s, limits))
        declared_frames = int(stream.frames or 0)
        first_frame, rotation = None, 0
        count, first_pts, last_pts, last_duration = 0, None, None, 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                count += 1
                if count > limits.max_frames:
                    raise VideoTooLong(
                        f"The video has more than {limits.max_frames} frames; split it and upload parts."
                    )
                if packet.pts is not None:
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    if last_pts is None or packet.pts > last_pts:
                        last_pts, last_duration = packet.pts, int(packet.duration or 0)
                if first_frame is None:
                    for frame in packet.decode():
                        first_frame = frame
                        rotation = _rotation_of(frame)
                        break
            if first_frame is None:
                # A decoder with delay gives its first frame only when flushed.
                for frame in stream.codec_context.decode(None):
                    first_frame = frame
                    break
        except av.FFmpegError as exc:
            raise CorruptVideo(f"The video cannot be decoded ({exc}). Export it again from the source system.") from exc
        if first_frame is None or count == 0:
            raise CorruptVideo("No frame of the video decodes: the file is damaged or incomplete.")
        if declared_frames and count < declared_frames * 0.98 - 1:
            raise TruncatedVideo(
                f"The file is incomplete: it declares {declared_frames} frames but holds {count}. "
                "Copy or export it again."
            )
        measured_s = 0.0
        if first_pts is not None and last_pts is not None:
            measured_s = float((last_pts - first_pts + last_duration) * time_base)
        duration_s = measured_s or declared_s or (count / fps if fps else 0.0)
        if duration_s > limits.max_duration_s:
            raise VideoTooLong(_too_long(duration_s, limits))
        if not fps and duration_s:
            fps = count / duration_s
        return VideoInfo(
            container=str(container.format.name),
            codec=str(codec_context.name),
            width=width,
            height=height,
            fps=fps,
            duration_s=duration_s,
            frame_count=count,
            rotation=rotation,
        )
    finally:
        container.close()


def _too_long(seconds: float, limits: VideoLimits) -> str:
    return (
        f"The video lasts {seconds / 60:.1f} minutes; the limit is {limits.max_duration_s / 60:.0f} minutes. "
        "Upload the part that matters."
    )


# -- frames ---------------------------------------------------------------------------------------------------
def _sample_slot(time_s: float, sample_fps: float) -> int:
    # The small tolerance keeps a frame stamped a hair before k/sample_fps (rounded timestamps) in slot k.
    return math.floor(time_s * sample_fps + 1e-6)


def video_frames(
    source: VideoSource,
    *,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    start_index: int = 0,
    threads: int = 0,
) -> Iterator[VideoFrame]:
    """The sampled frames in order: every frame when `sample_fps` is None, else the first frame in each
    1/sample_fps slot of presentation time. Frames before `start_index` are decoded (the codec needs them) but
    neither converted nor yielded, so resuming yields exactly what a full run yields from there.
    """
    container = _open(source)
    try:
        stream = _video_stream(container)
        # Frame threads decode several frames at once: the largest single gain on multi-core machines.
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        time_base = _time_base(stream)
        fps = _fps(stream) or 25.0
        first_pts: int | None = None
        previous_slot: int | None = None
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if frame.pts is not None:
                    if first_pts is None:
                        first_pts = frame.pts
                    time_s = float((frame.pts - first_pts) * time_base)
                else:
                    time_s = index / fps
                if sample_fps is not None:
                    slot = _sample_slot(time_s, sample_fps)
                    if slot == previous_slot:
                        continue
                    previous_slot = slot
                if index < start_index:
                    continue
                image = frame.to_ndarray(format="bgr24")
                yield VideoFrame(index=index, time_s=time_s, image=_upright(image, _rotation_of(frame)))
        except av.FFmpegError as exc:
            raise CorruptVideo(f"The video stops decoding after frame {index} ({exc}).") from exc
    finally:
        container.close()


def video_frame_at(source: VideoSource, time_s: float) -> VideoFrame:
    """The frame shown at `time_s` (from the first frame): seek to the keyframe before, decode forward. Its
    `index` is counted from the start when the seek lands at the start, else estimated from the frame rate."""
    container = _open(source)
    try:
        stream = _video_stream(container)
        time_base = _time_base(stream)
        fps = _fps(stream) or 25.0
        start_pts = int(stream.start_time or 0)
        target = max(0.0, float(time_s))
        try:
            container.seek(start_pts + int(target / time_base), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                pts = frame.pts if frame.pts is not None else start_pts
                frame_time = float((pts - start_pts) * time_base)
                # The frame on screen at `target` is the last one starting at or before it (half a frame's slack).
                if chosen is not None and frame_time > target + 0.5 / fps:
                    break
                chosen = (frame, frame_time)
        except av.FFmpegError as exc:
            raise CorruptVideo(f"The frame at {target:.2f} s cannot be decoded ({exc}).") from exc
        if chosen is None:
            raise CorruptVideo(f"No frame decodes at {target:.2f} s.")
        frame, frame_time = chosen
        image = _upright(frame.to_ndarray(format="bgr24"), _rotation_of(frame))
        return VideoFrame(index=round(frame_time * fps), time_s=frame_time, image=image)
    finally:
        container.close()


# -- faces ----------------------------------------------------------------------------------------------------
# The whole frame is searched for faces once per SCAN_INTERVAL_S of video (the first sampled frame of each
# interval). On the sampled frames in between, and for faces the scan missed, the detector looks only around
# the faces seen in the last SEED_KEEP_S: a face found once is followed cheaply, and a new face is found at the
# next scan, at most SCAN_INTERVAL_S after it appears. A full 720p detection costs about as much as a dozen
# looks around faces, which is what makes footage faster than real time on two cores (bench/video).
SCAN_INTERVAL_S = 1.0
SEED_KEEP_S = 0.6
# A face is looked for in a square this many times its box side, centred where it was: room for a walker's
# face to move for a few sampled frames, and context for the detector, at a small part of a frame's cost.
LOOK_SIDES = 3.0
# Whether video templates average the crop with its mirror image as stills do (two network passes a face).
FLIP_AVERAGE = False
# Faces with eyes closer than this are, before they are embedded, re-detected on a copy of their surroundings
# enlarged so that they measure about LOOK_CLOSER_IED px: YuNet places the landmarks of small faces loosely at
# their own size, and alignment (so the template) depends on them. Enlargement is 2× or 3×, never more.
LOOK_CLOSER_IED = 32.0
# Between scans a face is followed on its surroundings as they are, or enlarged 2× when its eyes are closer than
# this (YuNet finds few faces that small at their own size).
FOLLOW_ENLARGE_IED = 16.0
# Two detections of one face (the scan's and a look around a seed) overlap at least this much.
SAME_FACE_IOU = 0.4
# A cut (edited footage: a new shot) between two sampled frames: their 64×36 thumbnails differ by more than
# CUT_MEAN_DIFFERENCE of the grey range on average AND their colour histograms correlate less than
# CUT_HISTOGRAM_CORRELATION. Both, so that a pan (same colours, moved) or a light switched on (same layout,
# other brightness) is not taken for a cut. On the Hamilton clip the three cuts measure 0.11-0.12 and 0.40-0.62,
# the largest in-shot changes 0.11 with 0.92; CCTV-like and the Intel clips stay under 0.03 and above 0.96.
CUT_MEAN_DIFFERENCE = 0.06
CUT_HISTOGRAM_CORRELATION = 0.8


@dataclass(frozen=True)
class _Thumbnail:
    grey: np.ndarray
    histogram: np.ndarray


def _thumbnail(image: np.ndarray) -> _Thumbnail:
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    cv2.normalize(histogram, histogram)
    return _Thumbnail(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32), histogram)


def shot_cut(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether two frames (BGR) belong to different shots: see CUT_MEAN_DIFFERENCE."""
    return _is_cut(_thumbnail(before), _thumbnail(after))


def _is_cut(before: _Thumbnail, after: _Thumbnail) -> bool:
    difference = float(np.abs(after.grey - before.grey).mean()) / 255.0
    if difference <= CUT_MEAN_DIFFERENCE:
        return False
    return float(cv2.compareHist(after.histogram, before.histogram, cv2.HISTCMP_CORREL)) < CUT_HISTOGRAM_CORRELATION


def _look_factor(ied: float) -> float:
    if ied >= LOOK_CLOSER_IED:
        return 1.0
    return 2.0 if ied * 2.0 >= LOOK_CLOSER_IED * 0.75 else 3.0


# Embedding is the dearest stage: two network passes a face (the crop and its mirror image), about 20 ms each
# on one of two cores, so embedding every face of every sampled frame would take several times real time on
# its own. A followed face (one person, from frame to frame, as the looks around faces follow it) is embedded
# when it is first seen, again once EMBED_INTERVAL_S has passed since it last was, and whenever it is a better
# shot (quality at least BETTER_SHOT_RATIO times the best embedded of it so far). Its other sightings keep their
# box, landmarks, quality and crop, with no template: they continue tracks by overlap alone, and the best
# shots, chosen among the embedded faces, are the best of each moment and of the track.
EMBED_INTERVAL_S = 1.0
BETTER_SHOT_RATIO = 1.15


def _look_around(engine: FaceEngine, image: np.ndarray, face: DetectedFace, factor: float) -> DetectedFace | None:
    """The face again, near where it was: detected in a square LOOK_SIDES times its box side around it (enlarged
    `factor` times), the detection overlapping its old box most (IoU > 0.3), mapped back; None if not found."""
    x, y, w, h = face.box
    half = max(LOOK_SIDES / 2 * max(w, h), 16.0)
    cx, cy = x + w / 2, y + h / 2
    height, width = image.shape[:2]
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    region = image[y0:y1, x0:x1]
    if factor != 1:
        region = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    shift = np.array([x0, y0], dtype=np.float32)
    best, best_iou = None, 0.3
    # Only detections at the pack's own score threshold: on a small region where the face is lost, the
    # detector's tiny-image fallback offers low-scored blobs, which must not continue a face.
    threshold = float(engine.pack.detector.options.get("score_threshold", 0.6))
    for other in engine.detector.detect(region, pad_retry=False):
        if other.score < threshold:
            continue
        mapped = DetectedFace(
            box=(other.box[0] / factor + x0, other.box[1] / factor + y0, other.box[2] / factor, other.box[3] / factor),
            landmarks=(other.landmarks / factor + shift).astype(np.float32),
            score=other.score,
        )
        overlap = box_iou(mapped.box, face.box)
        if overlap > best_iou:
            best, best_iou = mapped, overlap
    return best


@dataclass
class _Followed:
    """A face followed from frame to frame: where it was last seen and when it was last embedded."""

    number: int
    face: DetectedFace
    time_s: float
    embedded_s: float = -math.inf
    best_quality: float = 0.0


class _FrameAnalyser:
    """Faces of consecutive sampled frames: scans and looks around the faces seen recently (see above)."""

    def __init__(self, engine: FaceEngine, timings: dict[str, float] | None) -> None:
        self.engine = engine
        self.seeds: list[_Followed] = []
        self.timings = timings
        self.next_number = 0

    def _add_time(self, stage: str, since: float) -> None:
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - since

    def _new(self, face: DetectedFace, time_s: float) -> _Followed:
        self.next_number += 1
        return _Followed(self.next_number, face, time_s)

    def detect(self, frame: VideoFrame, *, scan: bool) -> list[tuple[DetectedFace, _Followed]]:
        """This frame's faces, each with the followed face it continues (a new one for a face not seen before)."""
        detector = self.engine.detector
        image = frame.image
        live = [seed for seed in self.seeds if frame.time_s - seed.time_s <= SEED_KEEP_S]
        found: list[tuple[DetectedFace, _Followed | None]] = []
        if scan:
            # No padded retry: that is for tight crops of one face, and a frame is never one.
            found.extend((face, None) for face in detector.detect(image, pad_retry=False))
        for seed in live:
            if any(box_iou(seed.face.box, face.box) >= SAME_FACE_IOU for face, _ in found):
                continue
            # Following needs the face found, not its landmarks placed finely: enlarged only when tiny.
            factor = 1.0 if inter_eye(seed.face) >= FOLLOW_ENLARGE_IED else 2.0
            again = _look_around(self.engine, image, seed.face, factor)
            if again is not None and not any(box_iou(again.box, face.box) >= SAME_FACE_IOU for face, _ in found):
                found.append((again, seed))
        found.sort(key=lambda item: (-item[0].box[2] * item[0].box[3], item[0].box[0], item[0].box[1]))
        # A scanned face continues the live face it overlaps most (each at most once), else it is new.
        taken = {id(seed) for _, seed in found if seed is not None}
        result: list[tuple[DetectedFace, _Followed]] = []
        for face, origin in found:
            if origin is None:
                candidates = [s for s in live if id(s) not in taken and box_iou(s.face.box, face.box) >= SAME_FACE_IOU]
                origin = max(candidates, key=lambda s: box_iou(s.face.box, face.box), default=None)
                if origin is not None:
                    taken.add(id(origin))
            result.append((face, origin if origin is not None else self._new(face, frame.time_s)))
        seen = {id(seed) for _, seed in result}
        for face, seed in result:
            seed.face, seed.time_s = face, frame.time_s
        self.seeds = [seed for _, seed in result] + [s for s in live if id(s) not in seen]
        return result

    def _templates(self, image: np.ndarray, faces: list[DetectedFace], crops: np.ndarray) -> np.ndarray:
        if FLIP_AVERAGE:
            return self.engine.embed(crops)
        # One network pass per face: the fused best shots average views from several moments instead of a
        # crop and its mirror image.
        return l2_normalise(
            np.concatenate([self.engine.recogniser.embed(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        )

    def analyse(self, frame: VideoFrame, *, scan: bool, shot: int) -> FrameFaces:
        started = time.perf_counter()
        detections = self.detect(frame, scan=scan)
        self._add_time("detect", started)
        started = time.perf_counter()
        faces = [face for face, _ in detections]
        crops = self.engine.align(frame.image, faces)
        qualities = [assess_quality(face.landmarks, crop, face.score) for face, crop in zip(faces, crops, strict=True)]
        wanted = []
        for position, ((_, followed), quality) in enumerate(zip(detections, qualities, strict=True)):
            due = frame.time_s - followed.embedded_s >= EMBED_INTERVAL_S - 1e-6
            better = quality.usability >= BETTER_SHOT_RATIO * followed.best_quality
            if due or better:
                wanted.append(position)
                followed.embedded_s = frame.time_s
                followed.best_quality = max(followed.best_quality, quality.usability)
        # A small face to be embedded is first located again on an enlarged copy of its surroundings, where
        # YuNet places its landmarks well (alignment, so the template, depends on them).
        if wanted:
            refine_started = time.perf_counter()
            detector = self.engine.detector
            for position in wanted:
                face = faces[position]
                factor = _look_factor(inter_eye(face))
                closer = detector.redetect_around(frame.image, face, factor) if factor > 1 else None
                if closer is not None:
                    face = faces[position] = replace(closer, score=min(closer.score, face.score))
                    crops[position] = self.engine.align(frame.image, [face])[0]
                    qualities[position] = assess_quality(face.landmarks, crops[position], face.score)
            started += time.perf_counter() - refine_started  # counted as detection, not embedding
            self._add_time("detect", refine_started)
        # One view per face: a track's best shots from different moments are fused instead (tracking), which
        # averages out landmark error across frames as the still pipeline's several views do within one.
        embedded = (
            self._templates(frame.image, [faces[i] for i in wanted], crops[wanted])
            if wanted
            else np.zeros((0, self.engine.pack.embedding_dim), np.float32)
        )
        templates: list[np.ndarray | None] = [None] * len(faces)
        for position, template in zip(wanted, embedded, strict=True):
            templates[position] = template
        result = [
            VideoFace(detection=face, aligned=crop, template=template, quality=quality)
            for face, crop, template, quality in zip(faces, crops, templates, qualities, strict=True)
        ]
        self._add_time("embed", started)
        height, width = frame.image.shape[:2]
        return FrameFaces(index=frame.index, time_s=frame.time_s, width=width, height=height, faces=result, shot=shot)


def video_faces(
    engine: FaceEngine,
    source: VideoSource,
    *,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    start_index: int = 0,
    timings: dict[str, float] | None = None,
) -> Iterator[FrameFaces]:
    """Every sampled frame with its faces (possibly none), in order, from `start_index` on.

    Faces are found by a scan of the whole frame once per SCAN_INTERVAL_S and by looking around the faces seen
    in between (see SCAN_INTERVAL_S), each small face at an enlarged scale; each has its box, landmarks and
    detector score in frame pixels, quality, unit template and aligned crop. At a cut (`shot_cut`, edited
    footage) the frame is scanned afresh and `shot` counts on. The faces followed between scans depend on the frames
    before, so a run resumed at `start_index` first re-analyses, without yielding them, the sampled frames of the
    two scan intervals before it (cuts are looked for in every sampled frame from the start): it then yields
    what a full run yields from there, unless a face was followed only by looking around it, never found by a
    scan, for all of those two seconds (then it is found again at the next scan). Frame indexes and times are
    always exactly a full run's. `timings`, if given, accumulates seconds spent
    per stage ("decode", "detect", "embed").
    """
    analyser = _FrameAnalyser(engine, timings)
    # Before start_index: the sampled frames of the last two scan intervals (since a cut, at most), re-analysed
    # before the first frame yielded, so that the faces followed between scans are followed again.
    earlier_interval: list[tuple[VideoFrame, bool, int]] = []
    this_interval: list[tuple[VideoFrame, bool, int]] = []
    previous_time: float | None = None
    previous_thumbnail: _Thumbnail | None = None
    shot = 0
    frames = video_frames(source, sample_fps=sample_fps)
    while True:
        started = time.perf_counter()
        frame = next(frames, None)
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - started
        if frame is None:
            return
        thumbnail = _thumbnail(frame.image)
        cut = previous_thumbnail is not None and _is_cut(previous_thumbnail, thumbnail)
        previous_thumbnail = thumbnail
        if cut:
            shot += 1
            analyser.seeds = []
        scan = (
            cut
            or previous_time is None
            or math.floor(frame.time_s / SCAN_INTERVAL_S + 1e-6) != math.floor(previous_time / SCAN_INTERVAL_S + 1e-6)
        )
        previous_time = frame.time_s
        if frame.index < start_index:
            if scan:
                earlier_interval = [] if cut else this_interval
                this_interval = []
            this_interval.append((frame, scan, shot))
            continue
        for earlier, earlier_scan, earlier_shot in [*earlier_interval, *this_interval]:
            analyser.analyse(earlier, scan=earlier_scan, shot=earlier_shot)
        earlier_interval = this_interval = []
        yield analyser.analyse(frame, scan=scan, shot=shot)
