"""Reviewing footage (cases.video): frames shown at a time code, a frame taken as a still probe, a track made
searchable as a still probe holding its fused template, and proposed track merges decided by a person.

A frame is decoded from the stored original on request (faceengine.video.video_frame_at) and audited before it
is sent. A grabbed frame is a PNG probe processed like an upload, its `video_source` naming the video's sha256,
the time code and the frame. A track search uses a still probe holding the best shot's frame and one face of
origin `track` whose template is the quality-weighted mean of the best shots' templates
(faceengine.tracking.template_fuse); the search itself is an ordinary Search of that face, so candidates,
two-person review, the report and the audit trail are those of any still. Each change commits with its audit
event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Probe, ProbeFace, TrackMerge, TrackShot, Video, VideoTrack
from cases.video import png_encode, time_code, video_rejection_error, video_view_record
from faceengine.tracking import TrackFace, template_fuse
from faceengine.video import VideoRejected, video_frame_at
from rfr.errors import Conflict, InvalidInput
from rfr.queues import TaskName, queue_require_available, task_enqueue_on_commit
from rfr.storage import atomic_with_files, stored_file_save

# --- Frames ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameShown:
    """A frame of footage as shown: its index, its time code and the PNG."""

    index: int
    time_s: float
    png: bytes


def _frame_at(video: Video, time_s: float) -> tuple[int, float, np.ndarray]:
    if not 0 <= time_s <= video.duration_s + 1.0:
        raise InvalidInput("invalid_time", f"Give a time code between 0 and {video.duration_s:.2f} seconds.")
    try:
        with video.original.open("rb") as handle:
            frame = video_frame_at(handle, time_s)
    except VideoRejected as exc:
        raise video_rejection_error(exc) from None
    return frame.index, frame.time_s, frame.image


def video_frame_image(
    *, video: Video, time_s: float, viewer: AbstractBaseUser, request: HttpRequest | None = None
) -> FrameShown:
    """The frame on screen at `time_s`, as PNG, made from the stored original; the view is audited."""
    index, frame_time, image = _frame_at(video, time_s)
    png = png_encode(image)
    video_view_record(
        video=video, viewer=viewer, shown="frame", request=request, time_s=round(frame_time, 3), frame_index=index
    )
    return FrameShown(index=index, time_s=frame_time, png=png)


# --- Stills from footage: a grabbed frame, and a track's search face --------------------------------------


def _still_probe(
    *, video: Video, user: AbstractBaseUser, image: np.ndarray, name: str, provenance: dict[str, Any]
) -> tuple[Probe, bytes]:
    data = png_encode(image)
    height, width = image.shape[:2]
    probe = Probe(
        case=video.case,
        uploaded_by=user,  # type: ignore[misc]
        source=video.source,
        description=f"{name} of footage {video.original_name} (video #{video.pk}).",
        captured_at=video.captured_at,
        lawfully_held=video.lawfully_held,
        original_name=f"video-{video.pk}-{name.replace(' ', '-')}.png",
        image_format="PNG",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        video=video,
        video_source={
            "video_id": video.pk,
            "video_sha256": video.sha256,
            "video_name": video.original_name,
            **provenance,
        },
        heartbeat_at=timezone.now(),
    )
    return probe, data


def video_frame_grab(
    *, video: Video, time_s: float, user: AbstractBaseUser, request: HttpRequest | None = None
) -> Probe:
    """The frame at `time_s` as a new still probe, processed like an upload; its provenance records the
    video's sha256, the time code and the frame."""
    case_require_open(case=video.case, action="taking stills from footage")
    index, frame_time, image = _frame_at(video, time_s)
    provenance = {
        "kind": "frame",
        "time_s": round(frame_time, 3),
        "time_code": time_code(frame_time),
        "frame_index": index,
    }
    probe, data = _still_probe(
        video=video, user=user, image=image, name=f"frame at {time_code(frame_time)}", provenance=provenance
    )
    queue_require_available()
    with atomic_with_files():
        stored_file_save(probe.original, "original", ContentFile(data))
        probe.save()
        audit_event_record(
            action=AuditAction.VIDEO_FRAME_GRABBED,
            actor=user,
            target=probe,
            case_id=video.case_id,
            request=request,
            detail={"probe_id": probe.pk, "sha256": probe.sha256, **probe.video_source},  # type: ignore[dict-item]
        )
        task_enqueue_on_commit(TaskName.PROBE_PROCESS, probe.pk)
    return probe


def track_family(track: VideoTrack) -> list[VideoTrack]:
    """The track with every track a person confirmed as the same person (merged into it), in time order."""
    family = [track]
    frontier = [track]
    while frontier:
        children = list(VideoTrack.objects.filter(merged_into__in=frontier).order_by("number"))
        family.extend(children)
        frontier = children
    return sorted(family, key=lambda t: t.first_frame)


def track_shots(track: VideoTrack) -> list[TrackShot]:
    """The shots a search of this track fuses: the best RFR_VIDEO_BEST_SHOTS of it and its merged tracks."""
    shots = list(
        TrackShot.objects.filter(track__in=track_family(track), face__template__isnull=False)
        .select_related("face", "track")
        .order_by("-quality_score", "pk")
    )
    return shots[: int(settings.RFR_VIDEO_BEST_SHOTS)]


def track_search_face(*, track: VideoTrack, user: AbstractBaseUser, request: HttpRequest | None = None) -> ProbeFace:
    """The probe face to search for this track: its fused template (the quality-weighted mean of its best
    shots' templates, faceengine.tracking.template_fuse) on a still probe holding the best shot's frame. Made
    once and reused until a merge changes the track's shots; audited with the shots and time codes used."""
    video = track.video
    case_require_open(case=video.case, action="a new search")
    if track.merged_into_id is not None:
        raise Conflict("track_merged", "This track was merged into another; search that track instead.")
    if track.search_face_id is not None and track.search_face is not None:
        return track.search_face
    shots = track_shots(track)
    if not shots:
        raise Conflict("track_without_shots", "This track has no usable shot to search.")
    fused = template_fuse(
        [
            TrackFace(
                ref=shot.face.pk,
                frame_index=shot.face.frame_index,
                time_s=shot.face.time_s,
                box=tuple(float(v) for v in shot.face.box),  # type: ignore[arg-type]
                template=np.frombuffer(bytes(shot.face.template or b""), dtype="<f4").astype(np.float32),
                quality=shot.quality_score,
            )
            for shot in shots
        ]
    )
    best = shots[0].face
    _, frame_time, image = _frame_at(video, best.time_s)
    used = [
        {
            "track": shot.track.number,
            "face_id": shot.face.pk,
            "frame_index": shot.face.frame_index,
            "time_s": round(shot.face.time_s, 3),
            "time_code": time_code(shot.face.time_s),
            "quality": round(shot.quality_score, 4),
        }
        for shot in shots
    ]
    provenance = {
        "kind": "track",
        "track": track.number,
        "tracks": [t.number for t in track_family(track)],
        "fused": True,
        "fusion": "quality-weighted mean of the best shots' unit templates, L2-normalised",
        "shots": used,
        "time_s": round(frame_time, 3),
        "time_code": time_code(frame_time),
        "frame_index": best.frame_index,
        "first_time_code": time_code(track.first_time_s),
        "last_time_code": time_code(track.last_time_s),
    }
    probe, data = _still_probe(
        video=video, user=user, image=image, name=f"track {track.number} best shot", provenance=provenance
    )
    probe.status = Probe.Status.DONE
    probe.progress = 100
    probe.pack_key = best.pack_key
    probe.processed_at = timezone.now()
    with atomic_with_files():
        locked = VideoTrack.objects.select_for_update().get(pk=track.pk)
        if locked.search_face_id is not None:
            return ProbeFace.objects.get(pk=locked.search_face_id)
        stored_file_save(probe.original, "original", ContentFile(data))
        probe.save()
        face = ProbeFace(
            probe=probe,
            index=1,
            origin=ProbeFace.Origin.TRACK,
            box=best.box,
            landmarks=best.landmarks,
            detector_score=best.detector_score,
            quality=best.quality,
            template=np.asarray(fused, dtype="<f4").tobytes(),
            pack_key=best.pack_key,
        )
        # Probe face crops are PNG (cases.models.probe_face_crop_path names them so); the stored JPEG decoded.
        crop = cv2.imdecode(np.frombuffer(bytes(best.crop), np.uint8), cv2.IMREAD_COLOR)
        if crop is None:  # pragma: no cover - the JPEG was encoded by _chunk_store
            raise RuntimeError("a stored face crop could not be decoded")
        stored_file_save(face.aligned_crop, "crop.png", ContentFile(png_encode(crop)))
        face.save()
        locked.search_face = face
        locked.save(update_fields=["search_face"])
        audit_event_record(
            action=AuditAction.VIDEO_TRACK_PREPARED,
            actor=user,
            target=face,
            case_id=video.case_id,
            request=request,
            detail={"probe_id": probe.pk, "face_id": face.pk, "sha256": probe.sha256, **provenance},
        )
    return face


# --- Merges: proposed by rfr, decided by a person ------------------------------------------------------------


def track_merge_decide(
    *, merge: TrackMerge, user: AbstractBaseUser, confirm: bool, request: HttpRequest | None = None
) -> TrackMerge:
    """A person confirms (the second track becomes part of the first: a search of the first fuses both) or
    rejects a proposed merge. Audited with the tracks and the similarity."""
    case_require_open(case=merge.video.case, action="changing tracks")
    with transaction.atomic():
        locked = TrackMerge.objects.select_for_update().select_related("first", "second").get(pk=merge.pk)
        if locked.status != TrackMerge.Status.PROPOSED:
            raise Conflict("merge_decided", "This merge has already been decided.")
        if confirm and (locked.first.merged_into_id is not None or locked.second.merged_into_id is not None):
            raise Conflict("track_merged", "One of these tracks was merged into another meanwhile.")
        locked.status = TrackMerge.Status.CONFIRMED if confirm else TrackMerge.Status.REJECTED
        locked.decided_by = user  # type: ignore[assignment]
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        if confirm:
            VideoTrack.objects.filter(pk=locked.second_id).update(merged_into=locked.first_id)
            # The first track's shots change: its next search fuses both, on a new still probe.
            VideoTrack.objects.filter(pk=locked.first_id).update(search_face=None)
        audit_event_record(
            action=AuditAction.VIDEO_MERGE_DECIDED,
            actor=user,
            target=locked,
            case_id=merge.video.case_id,
            request=request,
            detail={
                "video_id": merge.video_id,
                "first_track": locked.first.number,
                "second_track": locked.second.number,
                "similarity": locked.similarity,
                "decision": locked.status,
            },
        )
    return locked
