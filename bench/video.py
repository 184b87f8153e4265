"""Video throughput: footage processed as the product does it (inspect, sampled decode, detection, embedding,
tracking), stage by stage, beside raw PyAV decoding of the same file in the same run.

    .venv/bin/python -m bench.video [--seconds 10] [--sample-fps 5] [--repeat 2] [--json]
    .venv/bin/python -m bench.video --labels real.csv [--videos DIR] [--images DIR]

Without --labels it makes two H.264 25 fps clips (1280×720 and 1920×1080, libx264 CRF 23, preset veryfast,
keyframe every 2 s) in a temporary folder with PyAV's encoder: a textured, gently noisy backdrop and three
real faces (LFW photos, ../shared/data/faces) cut out with a feathered ellipse, each drifting slowly at an
inter-eye distance of about 22-45 px (scaled ×1.5 at 1080p). Nothing is committed or kept.

With --labels (the layout of `evaluate video`: clip,target_identity,distractor_identity,ied_px,target_files,
gallery_files; for a real clip target_files and distractor_identity are empty and ied_px 0) it measures each
listed clip instead (paths relative to --videos, default the labels file's folder), and with --images also
enrols each row's gallery_files there and prints, for every track, the target's rank and score (with a one-clip
file naming one reference photo, the score says which track is the target's: e.g. the Hamilton clip with
`lin-manuel-miranda.png`).

Rows: `decode only` is PyAV decoding every frame with frame threads and nothing else (the floor any analysis
stands on); `end to end` is faceengine.evaluation.video.clip_tracks (what `evaluate video` and the Celery task
run). Realtime factor = video seconds ÷ wall seconds (higher is faster; 4× means an hour of footage in 15
minutes). Stage times are totals over the clip: decode (decoding and converting the sampled frames), detect
(scans and looks around faces), embed (align, embed, quality), track (tracks_build), inspect (video_inspect).
Best of --repeat runs, since the machine is shared. `cpu_seconds` is the process's CPU time for the best run and
`cpu_cores_used` that over its wall time: on a machine busy with other work, the second falls well under the
cores the engine may use, and the realtime factor with it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from faceengine.engine import FaceEngine, get_engine, primary_face_index
from faceengine.evaluation.video import (
    clip_tracks,
    read_video_labels,
    subject_rank,
    video_gallery_build,
)

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 25


def _faces_dir() -> Path:
    return Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")


def _pack_dir() -> Path:
    base = Path(os.environ.get("RFR_MODEL_PACK_DIR") or ROOT / "var" / "modelpacks")
    return base / os.environ.get("RFR_MODEL_PACK", "opencv-yunet2023mar-sface2021dec")


def _face_cutouts(engine: FaceEngine, count: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(patch, alpha, inter-eye px) of `count` LFW faces, each cut out around its face with a soft ellipse."""
    cutouts = []
    for path in sorted((_faces_dir() / "lfw" / "images").rglob("*.jpg"))[::97]:
        image = cv2.imread(str(path))
        if image is None:
            continue
        faces = engine.detect(image)
        index = primary_face_index(faces, image.shape)
        if index is None:
            continue
        face = faces[index]
        x, y, w, h = face.box
        cx, cy = x + w / 2, y + h / 2
        half_w, half_h = 0.8 * w, 0.95 * h
        x0, y0 = max(0, int(cx - half_w)), max(0, int(cy - half_h))
        x1, y1 = min(image.shape[1], int(cx + half_w)), min(image.shape[0], int(cy + half_h))
        patch = image[y0:y1, x0:x1]
        alpha: np.ndarray = np.zeros(patch.shape[:2], np.float32)
        centre = (int(cx - x0), int(cy - y0))
        cv2.ellipse(alpha, centre, (int(0.75 * w), int(0.9 * h)), 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.08 * w))
        ied = float(np.hypot(*(face.landmarks[1] - face.landmarks[0])))
        cutouts.append((patch, alpha, ied))
        if len(cutouts) == count:
            break
    return cutouts


def make_clip(path: Path, size: tuple[int, int], seconds: float, cutouts: list[Any], scale: float) -> None:
    """An H.264 clip of the cutouts drifting over a textured backdrop (see the module docstring)."""
    width, height = size
    rng = np.random.default_rng(7)
    backdrop = cv2.resize(rng.integers(40, 200, (height // 16, width // 16, 3), dtype=np.uint8), size)
    backdrop = cv2.GaussianBlur(backdrop, (0, 0), 3)
    targets = [22.0, 32.0, 45.0]
    starts = [(0.2, 0.35), (0.55, 0.3), (0.35, 0.65)]
    velocities = [(18.0, 4.0), (-14.0, 6.0), (10.0, -8.0)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(2 * FPS)}
        for index in range(round(seconds * FPS)):
            t = index / FPS
            frame = backdrop.astype(np.float32) + np.asarray(rng.normal(0, 3, backdrop.shape), dtype=np.float32)
            for (patch, alpha, ied), target, (sx, sy), (vx, vy) in zip(
                cutouts, targets, starts, velocities, strict=False
            ):
                factor = target * scale / ied
                small = cv2.resize(patch, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA).astype(np.float32)
                mask = cv2.resize(alpha, (small.shape[1], small.shape[0]))[:, :, None]
                x = int(sx * width + vx * scale * t)
                y = int(sy * height + vy * scale * t + 2 * np.sin(2 * np.pi * 1.7 * t))
                h, w = small.shape[:2]
                if x < 0 or y < 0 or x + w > width or y + h > height:
                    continue
                region = frame[y : y + h, x : x + w]
                frame[y : y + h, x : x + w] = region * (1 - mask) + small * mask
            picture = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="bgr24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def decode_only(path: Path) -> tuple[float, int]:
    """Seconds to decode every frame with frame threads (no conversion), and the frame count."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    return time.perf_counter() - started, frames


def measure(engine: FaceEngine, path: Path, *, sample_fps: float | None, repeat: int) -> dict[str, Any]:
    best_decode, frames = min(decode_only(path) for _ in range(repeat))
    best, best_cpu = None, 0.0
    for _ in range(repeat):
        cpu_started = time.process_time()
        result = clip_tracks(engine, path, sample_fps=sample_fps)
        cpu = time.process_time() - cpu_started
        if best is None or result.seconds < best.seconds:
            best, best_cpu = result, cpu
    assert best is not None
    duration = best.duration_s
    return {
        "clip": path.name,
        "frames": frames,
        "video_seconds": round(duration, 2),
        "decode_only_seconds": round(best_decode, 3),
        "decode_only_realtime": round(duration / best_decode, 1),
        "end_to_end_seconds": round(best.seconds, 3),
        "realtime_factor": round(duration / best.seconds, 2),
        "cpu_seconds": round(best_cpu, 3),
        "cpu_cores_used": round(best_cpu / best.seconds, 2),
        "stage_ms": {stage: round(1000 * seconds, 1) for stage, seconds in sorted(best.timings.items())},
        "tracks": len(best.tracks),
        "faces": sum(len(track.faces) for track in best.tracks),
        "track_objects": best.tracks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the made clips")
    parser.add_argument("--sample-fps", type=float, default=5.0, help="0: every frame")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sizes", default="720p,1080p", help="made clips: 720p, 1080p or both")
    parser.add_argument("--labels", type=Path, help="one-clip (or more) labels file of real clips, instead")
    parser.add_argument("--videos", type=Path, help="folder of the labelled clips (default: the labels' folder)")
    parser.add_argument("--images", type=Path, help="folder of gallery_files: also rank the target per track")
    parser.add_argument("--threads", type=int, default=0, help="engine threads, 0 = all cores")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engine = get_engine(_pack_dir(), threads=args.threads)
    sample_fps = args.sample_fps or None
    rows: list[dict[str, Any]] = []
    if args.labels:
        labels = read_video_labels(args.labels)
        videos = args.videos or args.labels.parent
        gallery = video_gallery_build(engine, labels, args.images) if args.images else None
        for label in labels:
            row = measure(engine, videos / label.clip, sample_fps=sample_fps, repeat=args.repeat)
            row["size"] = "labelled"
            if gallery is not None:
                row["target_ranks"] = [
                    {
                        "track": track.number,
                        "first_s": round(track.first_time_s, 2),
                        "last_s": round(track.last_time_s, 2),
                        "faces": len(track.faces),
                        "rank": subject_rank(
                            gallery.subject_scores(track.fused_template()), gallery.subject_names, label.target
                        ),
                        "target_score": round(
                            float(
                                gallery.subject_scores(track.fused_template())[
                                    gallery.subject_names.index(label.target)
                                ]
                            ),
                            3,
                        )
                        if label.target in gallery.subject_names
                        else None,
                    }
                    for track in row["track_objects"]
                    if track.searchable
                ]
            rows.append(row)
    else:
        cutouts = _face_cutouts(engine, 3)
        with tempfile.TemporaryDirectory(prefix="rfr-bench-video-") as folder:
            for name in args.sizes.split(","):
                path = Path(folder) / f"bench_{name}.mp4"
                make_clip(path, SIZES[name], args.seconds, cutouts, scale=SIZES[name][1] / 720)
                row = measure(engine, path, sample_fps=sample_fps, repeat=args.repeat)
                row["size"] = name
                row["file_bytes"] = path.stat().st_size
                rows.append(row)
    for row in rows:
        row.pop("track_objects")
    if args.json:
        print(json.dumps({"sample_fps": sample_fps, "threads": engine.threads, "rows": rows}, sort_keys=True))
        return
    print(f"Video throughput, sampling {sample_fps or 'every frame'} fps, engine threads {engine.threads}")
    print(
        f"{'clip':<28} {'size':>8} {'video s':>7} {'decode-only ×':>13} {'end-to-end ×':>12} "
        f"{'decode':>8} {'detect':>8} {'embed':>8} {'track':>7} {'inspect':>7} {'tracks':>6} {'CPU s':>6} {'cores':>5}"
    )
    for row in rows:
        ms = row["stage_ms"]
        print(
            f"{row['clip']:<28} {row['size']:>8} {row['video_seconds']:>7} {row['decode_only_realtime']:>13} "
            f"{row['realtime_factor']:>12} {ms.get('decode', 0):>8} {ms.get('detect', 0):>8} {ms.get('embed', 0):>8} "
            f"{ms.get('track', 0):>7} {ms.get('inspect', 0):>7} {row['tracks']:>6} {row['cpu_seconds']:>6} "
            f"{row['cpu_cores_used']:>5}"
        )
        for rank in row.get("target_ranks", []):
            print(f"    track {rank['track']} {rank['first_s']}-{rank['last_s']} s, {rank['faces']} faces: "
                  f"target at rank {rank['rank']}, score {rank['target_score']}")  # fmt: skip
    print("Stage columns are milliseconds over the whole clip (best run).")


if __name__ == "__main__":
    main()
