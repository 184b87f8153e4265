"""Video identification evaluation (`manage.py evaluate video`): clips with a known target person, searched
track by track against a temporary gallery with distractors.

Protocol, for a labels CSV `clip,target_identity,distractor_identity,ied_px,target_files,gallery_files`
(the layout of ../shared/data/video/synthetic/labels.csv):

* Gallery (in memory, exact search): the `gallery_files` of every clip's target (paths relative to the images
  folder), one template per photo (its primary face), under the target's identity; plus, for each distractor
  list `CSV:DIR` (columns `file,identity`, more allowed; paths relative to DIR), every listed image whose
  identity is neither a clip's target nor a clip's distractor, as other subjects (each list's identities kept
  apart). A photo without a face is a failure to enrol, counted. The clips' distractor people are not enrolled.
* Each clip is analysed as the product does it (faceengine.video.video_faces at `sample_fps`, then
  faceengine.tracking.tracks_build) and every track is searched twice: with its fused template (the
  quality-weighted mean of its best shots, `Track.fused_template`) and with its best single shot (the first of
  `Track.best_shots`). A search ranks subjects by their best-scoring photo; ties count against the target.
* `rank1` / `rank10`: clips where the target is at rank 1 (within rank 10) for ANY track of the clip (fused);
  `rank1_single` the same with best single shots. `fte_clips`: clips where no track was found.
* Which track is whose, where the clips' ground truth (`faces.csv` beside the clips, or `faces_csv`) is
  available: a track is the role (target or distractor) whose labelled box overlaps most of its faces (IoU
  ≥ 0.3), otherwise "other" (a false detection). `rank1_target_track`: clips where a target track finds the
  target at rank 1. Without ground truth, a distractor clip's distractor tracks are taken to be all its tracks
  but the one scoring highest for the target (`ground_truth: false` in the report).
* `distractor_fpir`: of the distractor tracks (clips with a distractor), the share whose top candidate scores
  above the operating threshold (an investigator would be shown a candidate for a person not enrolled).
  `other_fpir` the same for tracks of false detections.
* `threshold_at_distractor_fpir_5pct`: the threshold at which at most 5 % of the distractor tracks would return
  a candidate (the ⌊0.05·N⌋+1-th highest distractor top score), and `rank1_above_that_threshold` the clips whose
  target is at rank 1 with a score above it: FPIR depends on the gallery's size as much as on the probes, and
  this says what threshold the gallery would need.
* `realtime_factor`: video seconds processed per wall-clock second (decode, detection, embedding, tracking),
  over all clips, on whatever else the machine is doing at the time.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceengine.detector import box_iou
from faceengine.engine import FaceEngine
from faceengine.evaluation.datasets import natural_key, primary_template, read_identities, read_table
from faceengine.imageio import ImageLimits
from faceengine.tracking import FUSED_SHOTS, Track, TrackFace, track_face_from, tracks_build
from faceengine.video import DEFAULT_SAMPLE_FPS, VideoLimits, VideoSource, video_faces, video_inspect

LABEL_COLUMNS = ("clip", "target_identity", "distractor_identity", "ied_px", "target_files", "gallery_files")
BEST_SHOTS = FUSED_SHOTS
GROUND_TRUTH_IOU = 0.3
TARGET, DISTRACTOR, OTHER = "target", "distractor", "other"


@dataclass
class ClipLabel:
    clip: str
    target: str
    distractor: str
    ied_px: float
    gallery_files: list[str]


def read_video_labels(labels_csv: Path) -> list[ClipLabel]:
    columns, rows = read_table(Path(labels_csv))
    missing = set(LABEL_COLUMNS) - set(columns)
    if missing:
        raise ValueError(f"{labels_csv} lacks the column(s) {sorted(missing)}; expected {','.join(LABEL_COLUMNS)}.")
    return [
        ClipLabel(
            clip=row["clip"],
            target=row["target_identity"].strip(),
            distractor=(row["distractor_identity"] or "").strip(),
            ied_px=float(row["ied_px"] or 0.0),
            gallery_files=[part for part in (row["gallery_files"] or "").split(";") if part],
        )
        for row in rows
        if row.get("clip")
    ]


def parse_distractors(spec: str) -> tuple[Path, Path]:
    """`CSV:DIR` → (csv path, images folder)."""
    if ":" not in spec:
        raise ValueError(f"--distractors {spec!r} must look like CSV:DIR.")
    csv_text, images_text = spec.split(":", 1)
    csv_path, images_dir = Path(csv_text), Path(images_text)
    if not csv_path.is_file():
        raise ValueError(f"Distractor list {csv_path} does not exist.")
    if not images_dir.is_dir():
        raise ValueError(f"Distractor images folder {images_dir} does not exist.")
    return csv_path, images_dir


@dataclass
class VideoGallery:
    """Templates (one per enrolled photo) and the subject of each."""

    templates: np.ndarray  # (N, D) unit rows
    subjects: list[str]
    targets: int = 0  # target photos enrolled
    distractors: int = 0  # distractor photos enrolled
    fte: int = 0  # photos without a face
    subject_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # row → subject number
    subject_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = sorted(set(self.subjects), key=natural_key)
        number = {name: i for i, name in enumerate(names)}
        self.subject_names = names
        self.subject_index = np.array([number[s] for s in self.subjects], dtype=np.int64)

    def subject_scores(self, template: np.ndarray) -> np.ndarray:
        """Each subject's best score against the template (subjects in `subject_names` order)."""
        scores = self.templates @ np.asarray(template, dtype=np.float32)
        best = np.full(len(self.subject_names), -np.inf, dtype=np.float32)
        np.maximum.at(best, self.subject_index, scores)
        return best


def video_gallery_build(
    engine: FaceEngine,
    labels: Sequence[ClipLabel],
    images_dir: Path,
    distractors: Sequence[tuple[Path, Path]] = (),
    *,
    limits: ImageLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VideoGallery:
    """The temporary gallery of the protocol (module docstring)."""
    excluded = {label.target for label in labels} | {label.distractor for label in labels if label.distractor}
    jobs: list[tuple[Path, str, bool]] = []
    for label in labels:
        jobs.extend((Path(images_dir) / name, label.target, True) for name in label.gallery_files)
    # One target's photos are listed once even when it is the target of several clips.
    jobs = list(dict.fromkeys(jobs))
    for number, (csv_path, folder) in enumerate(distractors):
        for row in read_identities(csv_path):
            if row.identity not in excluded:
                jobs.append((Path(folder) / row.file, f"distractor{number}:{row.identity}", False))
    vectors, subjects, fte, targets, others = [], [], 0, 0, 0
    for done, (path, subject, is_target) in enumerate(jobs, start=1):
        template, _ = primary_template(engine, path, limits)
        if template is None:
            fte += 1
        else:
            vectors.append(template)
            subjects.append(subject)
            targets += is_target
            others += not is_target
        if progress:
            progress(done, len(jobs))
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, engine.pack.embedding_dim), np.float32)
    return VideoGallery(templates=matrix, subjects=subjects, targets=targets, distractors=others, fte=fte)


def subject_rank(scores: np.ndarray, names: list[str], subject: str) -> int | float:
    """The subject's rank among all subjects (ties count against it); inf when it is not enrolled."""
    try:
        position = names.index(subject)
    except ValueError:
        return math.inf
    return int(np.sum(scores >= scores[position]))


@dataclass
class ClipTracks:
    tracks: list[Track]
    duration_s: float
    seconds: float  # wall-clock processing time
    timings: dict[str, float]


def clip_tracks(
    engine: FaceEngine,
    source: VideoSource,
    *,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    limits: VideoLimits | None = None,
) -> ClipTracks:
    """A clip's tracks as the product builds them, with the time taken per stage."""
    started = time.perf_counter()
    info = video_inspect(source, limits=limits)
    timings: dict[str, float] = {"inspect": time.perf_counter() - started}
    faces: list[TrackFace] = []
    for frame in video_faces(engine, source, sample_fps=sample_fps, timings=timings):
        faces.extend(
            track_face_from(len(faces), frame.index, frame.time_s, face, shot=frame.shot) for face in frame.faces
        )
    tracked = time.perf_counter()
    tracks = tracks_build(faces)
    timings["track"] = time.perf_counter() - tracked
    return ClipTracks(tracks=tracks, duration_s=info.duration_s, seconds=time.perf_counter() - started, timings=timings)


def read_ground_truth(faces_csv: Path) -> dict[tuple[str, int], list[tuple[str, tuple[float, float, float, float]]]]:
    """(clip, frame) → [(role, box)] from a faces.csv (`clip,frame,role,x,y,w,h,...`)."""
    truth: dict[tuple[str, int], list[tuple[str, tuple[float, float, float, float]]]] = {}
    with Path(faces_csv).open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            box = (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
            truth.setdefault((row["clip"], int(row["frame"])), []).append((row["role"], box))
    return truth


def track_role(track: Track, clip: str, truth: dict[tuple[str, int], list[tuple[str, Any]]]) -> str:
    votes: Counter[str] = Counter()
    for face in track.faces:
        best = max(
            ((box_iou(face.box, box), role) for role, box in truth.get((clip, face.frame_index), [])),
            default=(0.0, OTHER),
        )
        votes[best[1] if best[0] >= GROUND_TRUTH_IOU else OTHER] += 1
    # Ties go to "other", then "distractor": a track is credited to the target only on a clear majority.
    return max((TARGET, DISTRACTOR, OTHER), key=lambda role: (votes[role], role != TARGET, role == OTHER))


def _fraction(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def run_video_evaluation(
    engine: FaceEngine,
    *,
    labels: Sequence[ClipLabel],
    videos_dir: Path,
    gallery: VideoGallery,
    operating_threshold: float,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    faces_csv: Path | None = None,
    limits: VideoLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The figures of the protocol (module docstring) with one row per clip under `clips_detail`."""
    faces_csv = faces_csv or (Path(videos_dir) / "faces.csv")
    truth = read_ground_truth(faces_csv) if faces_csv.is_file() else None
    names = gallery.subject_names
    details: list[dict[str, Any]] = []
    video_s = wall_s = 0.0
    distractor_tracks = distractor_hits = other_tracks = other_hits = unsearchable = 0
    stage_totals: Counter[str] = Counter()
    for done, label in enumerate(labels, start=1):
        result = clip_tracks(engine, Path(videos_dir) / label.clip, sample_fps=sample_fps, limits=limits)
        video_s += result.duration_s
        wall_s += result.seconds
        stage_totals.update(result.timings)
        rows: list[dict[str, Any]] = []
        unsearchable += sum(not track.searchable for track in result.tracks)
        for track in (t for t in result.tracks if t.searchable):
            shots = track.best_shots(BEST_SHOTS)
            fused = gallery.subject_scores(track.fused_template(BEST_SHOTS))
            single = gallery.subject_scores(np.asarray(shots[0].template))
            top = int(np.argmax(fused)) if len(fused) else -1
            rows.append(
                {
                    "track": track.number,
                    "faces": len(track.faces),
                    "first_s": round(track.first_time_s, 2),
                    "last_s": round(track.last_time_s, 2),
                    "rank_fused": subject_rank(fused, names, label.target),
                    "rank_single": subject_rank(single, names, label.target),
                    "target_score": float(fused[names.index(label.target)]) if label.target in names else None,
                    "top_subject": names[top] if top >= 0 else None,
                    "top_score": float(fused[top]) if top >= 0 else None,
                    "role": track_role(track, label.clip, truth) if truth is not None else None,
                }
            )
        if truth is None and label.distractor and rows:
            # No ground truth: every track but the one most like the target is taken for the distractor's.
            likeliest = max(rows, key=lambda r: (r["target_score"] or -1.0, -r["track"]))
            for row in rows:
                row["role"] = TARGET if row is likeliest else DISTRACTOR
        for row in rows:
            above = row["top_score"] is not None and row["top_score"] > operating_threshold
            if row["role"] == DISTRACTOR and label.distractor:
                distractor_tracks += 1
                distractor_hits += above
            elif row["role"] == OTHER:
                other_tracks += 1
                other_hits += above
        best_fused = min((r["rank_fused"] for r in rows), default=math.inf)
        best_single = min((r["rank_single"] for r in rows), default=math.inf)
        target_rows = [r for r in rows if r["role"] == TARGET]
        details.append(
            {
                "clip": label.clip,
                "ied_px": label.ied_px,
                "distractor": bool(label.distractor),
                "tracks": len(rows),
                "rank_fused": best_fused,
                "rank_single": best_single,
                "rank_target_track": min((r["rank_fused"] for r in target_rows), default=math.inf),
                "seconds": round(result.seconds, 2),
                "duration_s": round(result.duration_s, 2),
                "track_rows": rows,
            }
        )
        if progress:
            progress(done, len(labels))
    clips = len(details)
    # The threshold that would hold distractor FPIR to 5 % on this set (the (⌊0.05·N⌋+1)-th highest distractor
    # top score), and the clips found at rank 1 above it: what the operating threshold would have to be.
    tops = sorted((r["top_score"] for d in details for r in d["track_rows"] if r["role"] == DISTRACTOR), reverse=True)
    fpir5 = tops[math.floor(0.05 * len(tops))] if tops else None
    found_above = sum(
        any(r["rank_fused"] <= 1 and (r["target_score"] or -1.0) > fpir5 for r in d["track_rows"])
        for d in details
        if fpir5 is not None
    )
    figures: dict[str, Any] = {
        "clips": clips,
        "rank1": _fraction(sum(d["rank_fused"] <= 1 for d in details), clips),
        "rank10": _fraction(sum(d["rank_fused"] <= 10 for d in details), clips),
        "rank1_single": _fraction(sum(d["rank_single"] <= 1 for d in details), clips),
        "rank10_single": _fraction(sum(d["rank_single"] <= 10 for d in details), clips),
        "rank1_target_track": _fraction(sum(d["rank_target_track"] <= 1 for d in details), clips)
        if truth is not None
        else None,
        "fte_clips": sum(d["tracks"] == 0 for d in details),
        "distractor_clips": sum(d["distractor"] for d in details),
        "distractor_tracks": distractor_tracks,
        "distractor_fpir": _fraction(distractor_hits, distractor_tracks),
        "distractor_top_median": round(float(np.median(tops)), 4) if tops else None,
        "threshold_at_distractor_fpir_5pct": round(fpir5, 4) if fpir5 is not None else None,
        "rank1_above_that_threshold": _fraction(found_above, clips) if fpir5 is not None else None,
        "other_tracks": other_tracks,
        "other_fpir": _fraction(other_hits, other_tracks),
        "operating_threshold": operating_threshold,
        "ground_truth": truth is not None,
        "tracks": sum(d["tracks"] for d in details),
        "unsearchable_tracks": unsearchable,
        "gallery_templates": len(gallery.subjects),
        "gallery_subjects": len(gallery.subject_names),
        "gallery_target_templates": gallery.targets,
        "gallery_distractor_templates": gallery.distractors,
        "gallery_fte": gallery.fte,
        "sample_fps": sample_fps,
        "video_seconds": round(video_s, 2),
        "processing_seconds": round(wall_s, 2),
        "realtime_factor": round(video_s / wall_s, 2) if wall_s else None,
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in sorted(stage_totals.items())},
        "clips_detail": [{key: (None if value == math.inf else value) for key, value in d.items()} for d in details],
    }
    for d in figures["clips_detail"]:
        for row in d["track_rows"]:
            for key in ("rank_fused", "rank_single"):
                row[key] = None if row[key] == math.inf else row[key]
    return figures


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def format_video_report(result: dict[str, Any]) -> str:
    lines = [
        "Video identification (tracks searched against a temporary gallery; see faceengine/evaluation/video.py)",
        f"  gallery                 {result['gallery_templates']} templates, {result['gallery_subjects']} subjects"
        f" ({result['gallery_target_templates']} target photos; failures to enrol: {result['gallery_fte']})",
        f"  clips                   {result['clips']}  (tracks: {result['tracks']}; clips without a track: "
        f"{result['fte_clips']})",
        f"  rank-1, fused           {_percent(result['rank1'])}  (any track of the clip)",
        f"  rank-1, best single     {_percent(result['rank1_single'])}",
        f"  rank-10, fused          {_percent(result['rank10'])}",
        f"  rank-1, target track    {_percent(result['rank1_target_track'])}  (tracks labelled target by ground truth)",
        f"  distractor FPIR         {_percent(result['distractor_fpir'])}  ({result['distractor_tracks']} distractor"
        f" tracks, threshold {result['operating_threshold']})",
        f"  distractor top scores   median {result['distractor_top_median']}; FPIR 5% needs threshold "
        f"{result['threshold_at_distractor_fpir_5pct']}, where rank-1 is "
        f"{_percent(result['rank1_above_that_threshold'])}",
        f"  false-detection FPIR    {_percent(result['other_fpir'])}  ({result['other_tracks']} tracks)",
        f"  realtime factor         {result['realtime_factor']}×  ({result['video_seconds']} s of video in "
        f"{result['processing_seconds']} s, sampling {result['sample_fps'] or 'every frame'} fps)",
        "",
        f"  {'clip':<14} {'IED':>5} {'tracks':>6} {'fused':>6} {'single':>6} {'target':>6}",
    ]
    for d in result["clips_detail"]:
        lines.append(
            f"  {d['clip']:<14} {d['ied_px']:>5.1f} {d['tracks']:>6} {_rank(d['rank_fused']):>6} "
            f"{_rank(d['rank_single']):>6} {_rank(d['rank_target_track']):>6}"
        )
    return "\n".join(lines)


def _rank(value: int | None) -> str:
    return "—" if value is None else str(value)
