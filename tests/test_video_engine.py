"""faceengine.video and faceengine.tracking on real footage (the Hamilton clip), on synthetic CCTV-like clips
with per-frame ground truth, on clips made here in every required codec and container, and on bad files of
each class the engine must refuse."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from faceengine.detector import box_iou
from faceengine.engine import FaceEngine
from faceengine.tracking import (
    Track,
    TrackFace,
    template_fuse,
    track_face_from,
    track_merge_proposals,
    tracks_build,
)
from faceengine.video import (
    CorruptVideo,
    EmptyVideo,
    NoVideoStream,
    TruncatedVideo,
    UnsupportedVideo,
    VideoLimits,
    VideoRejected,
    VideoTooLarge,
    VideoTooLong,
    VideoTooManyPixels,
    video_faces,
    video_frame_at,
    video_frames,
    video_inspect,
)


@pytest.fixture(scope="session")
def video_dir(faces_dir: Path) -> Path:
    """../shared/data/video, beside the face data."""
    path = faces_dir.parent / "video"
    if not (path / "README.md").is_file():
        pytest.skip(f"shared video data not found at {path}")
    return path


def _tracks_of(engine: FaceEngine, source: Path, sample_fps: float | None = 5.0) -> list[Track]:
    faces: list[TrackFace] = []
    for frame in video_faces(engine, source, sample_fps=sample_fps):
        faces.extend(
            track_face_from(len(faces), frame.index, frame.time_s, face, shot=frame.shot) for face in frame.faces
        )
    return tracks_build(faces)


def _reference(engine: FaceEngine, path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 3 channels: the PNGs have an alpha channel
    assert image is not None
    face = engine.primary_face(image)
    assert face is not None
    return face.template


# -- inspecting and sampling ----------------------------------------------------------------------------------
def test_inspect_reads_a_synthetic_clip_from_a_path_and_from_a_file_object(video_dir: Path) -> None:
    path = video_dir / "synthetic" / "dev_008.mp4"
    info = video_inspect(path)
    assert (info.codec, info.width, info.height, info.frame_count, info.rotation) == ("h264", 1280, 720, 200, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(8.0, abs=0.05)
    assert info.sampled_count(5.0) == 40
    with path.open("rb") as handle:
        assert video_inspect(handle) == info


def test_sampling_is_by_presentation_time_and_a_resumed_run_yields_the_same_frames(video_dir: Path) -> None:
    path = video_dir / "real" / "short_hamilton_clip.mp4"  # 29.97 fps, first frame at 0.852 s in the container
    frames = [(f.index, round(f.time_s, 4)) for f in video_frames(path, sample_fps=5.0)]
    assert frames[0] == (0, 0.0)
    assert len(frames) == math.ceil(275 / 29.97 * 5)  # one frame in each 0.2 s slot
    assert all(int(t * 5 + 1e-6) == slot for slot, (_, t) in enumerate(frames))
    resumed = [(f.index, round(f.time_s, 4)) for f in video_frames(path, sample_fps=5.0, start_index=100)]
    assert resumed == [f for f in frames if f[0] >= 100]
    assert len(list(video_frames(path, sample_fps=None))) == 275


def test_frame_at_a_time_code_is_the_frame_a_full_decode_shows_then(video_dir: Path) -> None:
    path = video_dir / "synthetic" / "dev_013.mp4"  # keyframes every 2 s: 3.0 s needs decoding from 2.0 s
    grabbed = video_frame_at(path, 3.0)
    assert (grabbed.index, grabbed.time_s) == (75, pytest.approx(3.0))
    decoded = next(f for f in video_frames(path, sample_fps=None) if f.index == 75)
    assert np.array_equal(grabbed.image, decoded.image)


def test_resumed_face_analysis_yields_what_a_full_run_yields_from_there(engine: FaceEngine, video_dir: Path) -> None:
    path = video_dir / "synthetic" / "dev_021.mp4"  # small faces (IED 15.6): looked at around seeds between scans
    full = [(f.index, [f.box for f in f.faces]) for f in video_faces(engine, path, sample_fps=5.0)][:18]
    start = full[12][0]  # mid scan interval: the frames since the scan are re-analysed first
    resumed = []
    for frame in video_faces(engine, path, sample_fps=5.0, start_index=start):
        resumed.append((frame.index, [f.box for f in frame.faces]))
        if len(resumed) == 6:
            break
    assert resumed == full[12:]


# -- codecs and containers the issue names -----------------------------------------------------------------
def _make_clip(
    path: Path, container_format: str | None, codec: str, frames: int = 12, size: tuple[int, int] = (192, 128)
) -> None:
    width, height = size
    with av.open(str(path), mode="w", format=container_format) as container:
        stream: Any = container.add_stream(codec, rate=12)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for index in range(frames):
            image = np.full((height, width, 3), 40, np.uint8)
            cv2.circle(image, (20 + 10 * index, height // 2), 15, (200, 180, 90), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "decoder"),
    [
        ("h264.mp4", None, "libx264", "h264"),
        ("hevc.mov", None, "libx265", "hevc"),
        ("mpeg4.avi", None, "mpeg4", "mpeg4"),
        ("mjpeg.avi", None, "mjpeg", "mjpeg"),
        ("vp9.mkv", None, "libvpx-vp9", "vp9"),
        ("h264.ts", "mpegts", "libx264", "h264"),
    ],
)
def test_every_required_codec_and_container_is_inspected_and_sampled(
    tmp_path: Path, name: str, container_format: str | None, codec: str, decoder: str
) -> None:
    path = tmp_path / name
    _make_clip(path, container_format, codec)
    info = video_inspect(path)
    assert (info.codec, info.width, info.height, info.frame_count) == (decoder, 192, 128, 12)
    frames = list(video_frames(path, sample_fps=None))
    assert [f.index for f in frames] == list(range(12))
    assert frames[-1].time_s == pytest.approx(11 / 12, abs=0.01)


# -- refusals ---------------------------------------------------------------------------------------------
def _refusal(source: object, limits: VideoLimits | None = None) -> VideoRejected:
    with pytest.raises(VideoRejected) as caught:
        video_inspect(source, limits=limits)  # type: ignore[arg-type]
    assert caught.value.message  # a sentence a person can act on
    return caught.value


def test_empty_and_random_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert isinstance(_refusal(empty), EmptyVideo)
    noise = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    refused = _refusal(io.BytesIO(noise))
    assert refused.code in {"corrupt_video", "unsupported_video"}


def test_truncated_files_are_refused(tmp_path: Path) -> None:
    # Index at the end (PyAV's default): cut short, the file has no index at all.
    whole = tmp_path / "whole.mp4"
    _make_clip(whole, None, "libx264", frames=48)
    data = whole.read_bytes()
    assert isinstance(_refusal(io.BytesIO(data[: len(data) // 2])), CorruptVideo)
    # Index first ("faststart", as phones and exports write it): it promises frames the file no longer holds.
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), mode="w", options={"movflags": "faststart"}) as container:
        stream: Any = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 192, 128, "yuv420p"
        rng = np.random.default_rng(2)
        for _ in range(48):  # noise, so that every frame is large and the cut falls mid-stream
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (128, 192, 3), dtype=np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = fast.read_bytes()
    refused = _refusal(io.BytesIO(data[: int(len(data) * 0.6)]))
    assert isinstance(refused, TruncatedVideo | CorruptVideo)
    assert refused.code in {"truncated_video", "corrupt_video"}


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "voice.m4a"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream: Any = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10) * 8000).astype(np.int16)[None, :]
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="s16", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert isinstance(_refusal(path), NoVideoStream)


def test_unknown_codec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    _make_clip(path, None, "mjpeg")
    # An AVI whose video is tagged with a codec no decoder knows (what an exotic recorder export looks like).
    data = path.read_bytes().replace(b"MJPG", b"QQ9Z")
    refused = _refusal(io.BytesIO(data))
    assert isinstance(refused, UnsupportedVideo | CorruptVideo)


def test_limits_refuse_too_large_too_long_and_too_many_pixels(video_dir: Path) -> None:
    path = video_dir / "synthetic" / "dev_008.mp4"
    assert isinstance(_refusal(path, VideoLimits(max_bytes=10_000)), VideoTooLarge)
    assert isinstance(_refusal(path, VideoLimits(max_duration_s=5.0)), VideoTooLong)
    assert isinstance(_refusal(path, VideoLimits(max_frames=150)), VideoTooLong)
    assert isinstance(_refusal(path, VideoLimits(max_pixels=1280 * 719)), VideoTooManyPixels)
    assert isinstance(_refusal(path, VideoLimits(max_width=1000)), VideoTooManyPixels)


# -- tracks on real footage -----------------------------------------------------------------------------
def test_hamilton_clip_tracks_find_the_people_of_the_reference_photos(engine: FaceEngine, video_dir: Path) -> None:
    real = video_dir / "real"
    gallery = {
        "miranda": _reference(engine, real / "reference" / "lin-manuel-miranda.png"),
        "obama": _reference(engine, real / "reference" / "obama.jpg"),
    }
    tracks = _tracks_of(engine, real / "short_hamilton_clip.mp4")

    def in_shot(track: Track, first: int, last: int) -> int:
        return sum(first <= face.frame_index <= last for face in track.faces)

    def top(track: Track) -> tuple[str, float]:
        fused = track.fused_template()
        return max(((name, float(template @ fused)) for name, template in gallery.items()), key=lambda p: p[1])

    # Shot 3 (frames 82-210): Lin-Manuel Miranda, medium shot. His track stays within the shot.
    miranda = max(tracks, key=lambda t: in_shot(t, 82, 210))
    assert in_shot(miranda, 82, 210) >= 15
    assert in_shot(miranda, 82, 210) == len(miranda.faces)
    name, score = top(miranda)
    assert name == "miranda" and score > 0.5
    # Shot 4 (frames 211-274): Barack Obama, three-quarter view, small (IED 10-17 px): his track finds him.
    obama_scores = [
        (float(gallery["obama"] @ t.fused_template()), t) for t in tracks if in_shot(t, 211, 274) == len(t.faces)
    ]
    best_score, obama = max(obama_scores, key=lambda p: p[0])
    assert top(obama)[0] == "obama" and best_score > 0.3
    # Best shots are views from different moments of the track.
    times = sorted(face.time_s for face in miranda.best_shots(5))
    assert len(times) == 5 and min(b - a for a, b in itertools.pairwise(times)) >= 0.39


# -- tracks on synthetic footage with ground truth ------------------------------------------------------
def _truth(video_dir: Path, clip: str) -> dict[int, list[dict[str, str]]]:
    rows: dict[int, list[dict[str, str]]] = {}
    with (video_dir / "synthetic" / "faces.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["clip"] == clip:
                rows.setdefault(int(row["frame"]), []).append(row)
    return rows


def _role(face: TrackFace, truth: dict[int, list[dict[str, str]]]) -> tuple[str, float] | None:
    """The role of the labelled face the detection is, and how fully its photo is shown (the largest opacity of
    that role's layers in the frame: below 1 during a crossfade or a fade in or out)."""
    for row in truth.get(face.frame_index, []):
        box = (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
        if box_iou(face.box, box) >= 0.3:
            return row["role"], max(float(r["opacity"]) for r in truth[face.frame_index] if r["role"] == row["role"])
    return None


@pytest.fixture(scope="module")
def dev_013(engine: FaceEngine, video_dir: Path) -> Iterator[list[Track]]:
    """A clip with a target (IED about 30 px, three photos with crossfades) and a distractor on screen 1.8-6.4 s."""
    yield _tracks_of(engine, video_dir / "synthetic" / "dev_013.mp4")


def test_synthetic_tracks_follow_each_person_without_mixing_them(dev_013: list[Track], video_dir: Path) -> None:
    truth = _truth(video_dir, "dev_013.mp4")
    by_role: dict[str, list[Track]] = {"target": [], "distractor": []}
    for track in dev_013:
        roles = {(_role(face, truth) or ("none", 1.0))[0] for face in track.faces}
        assert len(roles) == 1, f"track {track.number} mixes {roles}"
        by_role.setdefault(roles.pop(), []).append(track)
    # One track each, across the target's photo changes (2.67 s, 5.33 s) and the distractor's fades.
    assert len(by_role["target"]) == 1 and len(by_role["distractor"]) == 1
    target, distractor = by_role["target"][0], by_role["distractor"][0]
    assert target.first_time_s == 0.0 and target.last_time_s >= 7.6
    assert distractor.first_time_s <= 2.2 and distractor.last_time_s >= 6.0
    assert track_merge_proposals(dev_013) == []  # they are different people


def test_best_shots_are_fully_shown_faces_and_fusing_them_beats_the_best_single_shot(
    engine: FaceEngine, dev_013: list[Track], video_dir: Path, faces_dir: Path
) -> None:
    truth = _truth(video_dir, "dev_013.mp4")
    with (video_dir / "synthetic" / "labels.csv").open() as handle:
        label = next(row for row in csv.DictReader(handle) if row["clip"] == "dev_013.mp4")
    gallery = [_reference(engine, faces_dir / "celeba" / "images" / name) for name in label["gallery_files"].split(";")]
    target = max(dev_013, key=lambda t: len(t.faces))
    shots = target.best_shots(5)
    for shot in shots:
        role = _role(shot, truth)
        # Not a ghosted transition frame: one photo shown at 90 % or more (the other, if any, at 10 % or less).
        assert role is not None and role[0] == "target" and role[1] >= 0.9, f"frame {shot.frame_index}: {role}"

    def score(template: np.ndarray) -> float:
        return max(float(g @ template) for g in gallery)

    assert score(template_fuse(shots)) >= score(np.asarray(shots[0].template))


# -- tracking as a pure function --------------------------------------------------------------------------
def _unit(seed: int, dim: int = 128) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _jitter(template: np.ndarray, seed: int, amount: float = 0.2) -> np.ndarray:
    noisy = template + amount * _unit(seed, len(template))
    return (noisy / np.linalg.norm(noisy)).astype(np.float32)


def test_tracks_survive_short_misses_keep_crossing_people_apart_and_are_deterministic() -> None:
    alice, bob = _unit(1), _unit(2)
    faces: list[TrackFace] = []
    for step in range(20):
        t = step * 0.2
        if step not in (6, 7, 8):  # Alice is missed for 0.6 s
            faces.append(TrackFace(len(faces), step * 5, t, (100 + 20 * step, 200, 40, 50), _jitter(alice, step), 0.9))
        # Bob walks the other way and crosses Alice around step 10, at a slightly different height
        faces.append(TrackFace(len(faces), step * 5, t, (500 - 20 * step, 215, 40, 50), _jitter(bob, 100 + step), 0.5))
    tracks = tracks_build(faces)
    assert len(tracks) == 2
    for track, person in zip(tracks, (alice, bob), strict=True):
        assert all(float(face.template @ person) > 0.8 for face in track.faces)
    assert [len(t.faces) for t in tracks] == [17, 20]
    reordered = tracks_build(list(reversed(faces)))
    assert [[f.ref for f in t.faces] for t in reordered] == [[f.ref for f in t.faces] for t in tracks]


def test_a_track_that_breaks_for_long_is_proposed_for_merging_and_others_are_not() -> None:
    alice, bob = _unit(3), _unit(4)
    before = [TrackFace(i, i * 5, i * 0.2, (100 + 5 * i, 100, 40, 50), _jitter(alice, i), 0.8) for i in range(5)]
    box = (600.0, 300.0, 40.0, 50.0)
    after = [TrackFace(10 + i, 100 + i * 5, 4 + i * 0.2, box, _jitter(alice, 50 + i), 0.8) for i in range(5)]
    other = [TrackFace(20 + i, 150 + i * 5, 6 + i * 0.2, box, _jitter(bob, 70 + i), 0.8) for i in range(5)]
    tracks = tracks_build(before + after + other)
    assert len(tracks) == 3
    proposals = track_merge_proposals(tracks)
    assert [(p.first, p.second) for p in proposals] == [(0, 1)]
    assert proposals[0].similarity > 0.8


def test_best_shots_are_spread_in_time_and_fusion_weighs_quality() -> None:
    person = _unit(5)
    faces = [
        TrackFace(i, i, i * 0.04, (100, 100, 40, 50), _jitter(person, i), 0.9 if i < 10 else 0.3) for i in range(100)
    ]
    track = tracks_build(faces)[0]
    shots = track.best_shots(5)
    assert len(shots) == 5 and shots[0].quality == 0.9
    times = sorted(s.time_s for s in shots)
    # The five best (frames 0-9, all 0.9) are 0.36 s long: spread, the shots cannot all come from there.
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.39
    heavy = TrackFace(0, 0, 0.0, (0, 0, 1, 1), _unit(6), 1.0)
    light = TrackFace(1, 1, 0.0, (0, 0, 1, 1), _unit(7), 0.01)
    fused = template_fuse([heavy, light])
    assert abs(float(np.linalg.norm(fused)) - 1.0) < 1e-5
    assert float(fused @ heavy.template) > float(fused @ light.template)
