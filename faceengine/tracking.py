"""Face tracks: the faces of the sampled frames of a video linked into one track per person on screen, each
with its best shots and a fused template, and proposals to merge tracks of one person that broke.

Everything here is a pure, deterministic function of the stored per-frame faces (`TrackFace`): the analysis is
retrospective, so tracks are built offline, after (or again after) the frames are analysed, and the same faces
always give the same tracks. A track is a lead for a person to look at, never an identification.

Linking (`tracks_build`), frame by frame in time order: a face joins the track whose last face is near in
place, size and time (the box may drift with the gap) and whose recent appearance it resembles (cosine of
templates), the best-scoring pairs first; a face no track takes starts a track. A track survives misses of up
to `max_gap_s`, so a face lost for a few frames (blur, a turn, occlusion) continues its track. A box that
strongly overlaps where the track's face would be a moment later is accepted with a weaker appearance match,
since one person's templates vary frame to frame on small, blurred faces; a weaker overlap or a longer gap
needs a clearer appearance match, so two people crossing are not swapped and a person taking another's place
(or a cut to another shot) starts a new track.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceengine.detector import box_iou
from faceengine.engine import AnalysedFace
from faceengine.video import VideoFace

Box = tuple[float, float, float, float]  # x, y, width, height in frame pixels

# Linking parameters (see the module docstring). Chosen for people walking through CCTV and phone footage at
# about 5 sampled frames a second; none depends on a particular clip.
MAX_GAP_S = 1.5
# A face may be this many box sides per second of gap, plus half a side, from where its track's last two faces
# say it would be (a change of pace or direction), or from where a one-face track was seen (a walker's face
# crosses several of its own widths a second).
MAX_SPEED_SIDES_PER_S = 1.0
MAX_SPEED_UNKNOWN_SIDES_PER_S = 4.0
MAX_SIZE_RATIO = 1.8
STRONG_OVERLAP_IOU = 0.5
STRONG_OVERLAP_MAX_GAP_S = 0.5
STRONG_OVERLAP_MIN_SIMILARITY = 0.1
MIN_LINK_SIMILARITY = 0.25
# SFace cosine this high between one face and a track's recent faces is rarely two people (docs/evaluation.md:
# different-person scores mostly stay under 0.3).
CLEAR_LINK_SIMILARITY = 0.5
# The appearance score given to a link by overlap alone (no template to compare): that of a fair match, so that
# a candidate with a template that clearly matches is preferred.
UNKNOWN_SIMILARITY = 0.3
# Faces without a template link by overlap (IoU) at least this, within this gap: as faceengine.video follows a
# face between scans (it re-detects around where the face was, up to SEED_KEEP_S earlier, keeping IoU > 0.3).
FOLLOW_MIN_IOU = 0.3
FOLLOW_MAX_GAP_S = 0.8
RECENT_FACES = 5
# Best shots are at least this far apart in time (or the track's span over twice the shots wanted, if longer),
# so they are views from different moments, not k neighbouring frames of one.
MIN_SHOT_SPACING_S = 0.4
# Shots fused into a track's search template (and shown as its best shots). Fusing more views from different
# moments averages out more of each view's blur, noise and landmark error: on the synthetic dev clips rank-1
# rose from 1, 3, 5 shots to 8 and stayed level with 12 or all embedded faces (docs/evaluation.md, Video).
FUSED_SHOTS = 8
# Tracks are proposed for merging when their fused templates are this similar and they never share a frame.
MERGE_MIN_SIMILARITY = 0.5


@dataclass(frozen=True)
class TrackFace:
    """One face of one sampled frame, as stored. `ref` is the caller's key for it (a row id)."""

    ref: int
    frame_index: int
    time_s: float
    box: Box
    template: np.ndarray | None = field(repr=False)  # (D,) unit length; None: not embedded (faceengine.video)
    quality: float  # the engine's usability (FaceQuality.usability): higher is a better shot
    uncertain: bool = False
    shot: int = 0  # FrameFaces.shot: faces of different shots (a cut between them) are never linked


@dataclass
class Track:
    number: int  # 0-based, in order of first appearance
    faces: list[TrackFace]

    @property
    def first_time_s(self) -> float:
        return self.faces[0].time_s

    @property
    def last_time_s(self) -> float:
        return self.faces[-1].time_s

    @property
    def first_index(self) -> int:
        return self.faces[0].frame_index

    @property
    def last_index(self) -> int:
        return self.faces[-1].frame_index

    def best_shots(self, k: int = FUSED_SHOTS) -> list[TrackFace]:
        """Up to k embedded faces (with a template), the best by quality first, spread in time: each at least
        MIN_SHOT_SPACING_S (or the track's span over 2k) from those already chosen; the spacing halves until k are
        found or none is left. Uncertain detections come only when nothing else is left."""
        embedded = [face for face in self.faces if face.template is not None]
        if k <= 0 or not embedded:
            return []
        ranked = sorted(embedded, key=lambda f: (f.uncertain, -f.quality, f.frame_index))
        span = self.last_time_s - self.first_time_s
        spacing = max(MIN_SHOT_SPACING_S, span / (2 * k))
        chosen: list[TrackFace] = []
        while len(chosen) < min(k, len(ranked)):
            for face in ranked:
                if len(chosen) >= k:
                    break
                if face in chosen:
                    continue
                if all(abs(face.time_s - other.time_s) >= spacing for other in chosen):
                    chosen.append(face)
            spacing /= 2
            if spacing < 1e-3:
                spacing = 0.0
        return sorted(chosen, key=lambda f: (f.uncertain, -f.quality, f.frame_index))

    @property
    def searchable(self) -> bool:
        """Whether any face has a template (a track followed only by overlap from its first face has none)."""
        return any(face.template is not None for face in self.faces)

    def fused_template(self, k: int = FUSED_SHOTS) -> np.ndarray:
        """`template_fuse` of the best shots; ValueError for a track that is not `searchable`."""
        return template_fuse(self.best_shots(k))


def template_fuse(shots: Sequence[TrackFace]) -> np.ndarray:
    """The quality-weighted mean of the shots' unit templates, L2-normalised: one search template for a track.
    Averaging views from different moments cancels part of each view's blur, noise and landmark error."""
    if not shots:
        raise ValueError("template_fuse needs at least one shot")
    weights = np.array([max(shot.quality, 1e-3) for shot in shots], dtype=np.float64)
    stacked = np.stack([np.asarray(shot.template, dtype=np.float64) for shot in shots])
    mean = (weights[:, None] * stacked).sum(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0:
        return np.asarray(stacked[0], dtype=np.float32)
    return (mean / norm).astype(np.float32)


def _recent_template(track: Track) -> np.ndarray | None:
    """The quality-weighted mean of the track's last RECENT_FACES templates (None: none embedded yet)."""
    recent = [f for f in track.faces if f.template is not None][-RECENT_FACES:]
    if not recent:
        return None
    mean = np.sum([np.asarray(f.template, dtype=np.float64) * max(f.quality, 1e-3) for f in recent], axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm else mean


def _predicted_box(track: Track, time_s: float) -> Box:
    """Where the track's face would be at `time_s`, moving on as it moved between its last two faces."""
    last = track.faces[-1]
    if len(track.faces) < 2:
        return last.box
    before = track.faces[-2]
    dt = last.time_s - before.time_s
    if dt <= 0:
        return last.box
    gap = time_s - last.time_s
    vx = (last.box[0] + last.box[2] / 2 - before.box[0] - before.box[2] / 2) / dt
    vy = (last.box[1] + last.box[3] / 2 - before.box[1] - before.box[3] / 2) / dt
    return (last.box[0] + vx * gap, last.box[1] + vy * gap, last.box[2], last.box[3])


def _link_score(track: Track, recent: np.ndarray | None, face: TrackFace, max_gap_s: float) -> float | None:
    """How well `face` continues `track` (higher is better), or None when it cannot."""
    last = track.faces[-1]
    gap = face.time_s - last.time_s
    if gap <= 0 or gap > max_gap_s or face.shot != last.shot:
        return None
    side_last = math.sqrt(max(last.box[2] * last.box[3], 1e-6))
    side_face = math.sqrt(max(face.box[2] * face.box[3], 1e-6))
    if max(side_last, side_face) / min(side_last, side_face) > MAX_SIZE_RATIO:
        return None
    predicted = _predicted_box(track, face.time_s)
    centre_predicted = (predicted[0] + predicted[2] / 2, predicted[1] + predicted[3] / 2)
    centre_face = (face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2)
    distance = math.hypot(centre_face[0] - centre_predicted[0], centre_face[1] - centre_predicted[1])
    side = (side_last + side_face) / 2
    iou = box_iou(predicted, face.box)
    strong = iou >= STRONG_OVERLAP_IOU and gap <= STRONG_OVERLAP_MAX_GAP_S
    if recent is None or face.template is None:
        # A face without a template (or a track without one yet) continues a track on overlap alone, as the
        # analysis followed it: overlapping where the face was or would be, soon after.
        overlap = max(iou, box_iou(last.box, face.box))
        if overlap < FOLLOW_MIN_IOU or gap > FOLLOW_MAX_GAP_S:
            return None
        return UNKNOWN_SIMILARITY + 0.5 * overlap - 0.1 * gap / max_gap_s
    similarity = float(np.dot(recent, np.asarray(face.template, dtype=np.float64)))
    # Near where the track's motion says (or, without a velocity yet, anywhere a walker's face gets in the gap)
    # the usual appearance match links; further away (a sudden move of the head or the camera), only a clear
    # one does.
    speed = MAX_SPEED_SIDES_PER_S if len(track.faces) >= 2 else MAX_SPEED_UNKNOWN_SIDES_PER_S
    if distance > side * (0.5 + MAX_SPEED_UNKNOWN_SIDES_PER_S * gap):
        return None
    if distance > side * (0.5 + speed * gap) and similarity < CLEAR_LINK_SIMILARITY:
        return None
    needed = STRONG_OVERLAP_MIN_SIMILARITY if strong else MIN_LINK_SIMILARITY
    if similarity < needed:
        return None
    # Appearance counts most; nearness breaks ties between similar candidates; a longer gap counts against.
    return similarity + 0.5 * iou - 0.1 * gap / max_gap_s


def tracks_build(faces: Sequence[TrackFace], *, max_gap_s: float = MAX_GAP_S) -> list[Track]:
    """The tracks of a video's faces (any order in; see the module docstring), numbered by first appearance."""
    ordered = sorted(faces, key=lambda f: (f.frame_index, f.box[0], f.box[1], f.ref))
    tracks: list[Track] = []
    position = 0
    while position < len(ordered):
        frame_index = ordered[position].frame_index
        end = position
        while end < len(ordered) and ordered[end].frame_index == frame_index:
            end += 1
        frame_faces = ordered[position:end]
        position = end
        now = frame_faces[0].time_s
        live = [t for t in tracks if 0 < now - t.last_time_s <= max_gap_s]
        recents = {t.number: _recent_template(t) for t in live}
        pairs: list[tuple[float, int, int]] = []
        for t_pos, track in enumerate(live):
            for f_pos, face in enumerate(frame_faces):
                score = _link_score(track, recents[track.number], face, max_gap_s)
                if score is not None:
                    pairs.append((score, t_pos, f_pos))
        # Greedy, best pair first; ties broken by position, so the result never depends on hashing or timing.
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        used_tracks: set[int] = set()
        used_faces: set[int] = set()
        for _, t_pos, f_pos in pairs:
            if t_pos in used_tracks or f_pos in used_faces:
                continue
            used_tracks.add(t_pos)
            used_faces.add(f_pos)
            live[t_pos].faces.append(frame_faces[f_pos])
        for f_pos, face in enumerate(frame_faces):
            if f_pos not in used_faces:
                tracks.append(Track(number=len(tracks), faces=[face]))
    return tracks


@dataclass(frozen=True)
class MergeProposal:
    """Two tracks that may be one person (first ends before second starts): a person decides."""

    first: int  # Track.number
    second: int
    similarity: float  # cosine of the tracks' fused templates


def track_merge_proposals(
    tracks: Sequence[Track], *, min_similarity: float = MERGE_MIN_SIMILARITY, k: int = FUSED_SHOTS
) -> list[MergeProposal]:
    """Pairs of tracks that never share a frame and whose fused templates are at least `min_similarity` alike,
    most similar first."""
    fused = {track.number: track.fused_template(k) for track in tracks if track.searchable}
    proposals = []
    for a in tracks:
        for b in tracks:
            if a.number == b.number or a.number not in fused or b.number not in fused or a.last_index >= b.first_index:
                continue
            similarity = float(np.dot(fused[a.number], fused[b.number]))
            if similarity >= min_similarity:
                proposals.append(MergeProposal(first=a.number, second=b.number, similarity=similarity))
    proposals.sort(key=lambda p: (-p.similarity, p.first, p.second))
    return proposals


def track_face_from(
    ref: int, frame_index: int, time_s: float, face: AnalysedFace | VideoFace, *, shot: int = 0
) -> TrackFace:
    """A TrackFace from an engine face, for callers that track straight from `video_faces`."""
    x, y, w, h = (float(v) for v in face.box)
    return TrackFace(
        ref=ref,
        frame_index=frame_index,
        time_s=time_s,
        box=(x, y, w, h),
        template=None if face.template is None else np.asarray(face.template, dtype=np.float32),
        quality=float(face.quality.usability),
        uncertain=bool(face.quality.uncertain),
        shot=shot,
    )
