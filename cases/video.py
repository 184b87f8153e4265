"""Video evidence: footage brought into a case, its faces found and tracked in resumable chunks.

`video_upload` stores the original byte for byte with its sha256 and the same provenance and lawful-holding
record as a probe image, after faceengine.video has proved that it decodes within the limits (RFR_VIDEO_MAX_*);
anything refused leaves no row and no file. `video_process` (the Celery task `cases.video_process`, inference
queue) analyses the sampled frames in chunks: each chunk's faces (unique per video, frame and face) and the
progress commit together, so a run that dies resumes after the last stored frame and never stores a face
twice. Tracks are then built from the stored faces alone (faceengine.tracking, a pure function), with their
best shots and merge proposals. Every view of footage is audited (`video_view_record`).

Reviewing footage (frames, stills, track searches, merges) is cases.video_review; pages cases.video_views,
API cases.video_api.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

import cv2
import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files.base import ContentFile, File
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.access import case_get_for_user
from cases.lifecycle import case_require_open
from cases.models import Case, Probe, TrackMerge, TrackShot, Video, VideoFace, VideoTrack
from cases.permissions import VIEW_CASE
from faceengine.tracking import TrackFace, track_merge_proposals, tracks_build
from faceengine.video import (
    FrameFaces,
    NoVideoStream,
    UnsupportedVideo,
    VideoLimits,
    VideoRejected,
    VideoTooLarge,
    VideoTooLong,
    VideoTooManyPixels,
    video_faces,
    video_inspect,
)
from rfr.engine import active_engine
from rfr.errors import ApplicationError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from rfr.limits import megabytes, text_limit_check
from rfr.queues import TaskName, queue_require_available, task_enqueue_on_commit
from rfr.storage import atomic_with_files, stored_file_save

logger = logging.getLogger(__name__)

AnyUser = AbstractBaseUser | AnonymousUser

NO_FACE_MESSAGE = "No face was found in the analysed frames of this footage."
# FFmpeg demuxers of single pictures (and "*_pipe", one per image format): refused as footage.
STILL_IMAGE_CONTAINERS = frozenset({"image2", "image2pipe", "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe"})


# --- Limits and refusals -----------------------------------------------------------------------------------


def video_limits() -> VideoLimits:
    width, height = int(settings.RFR_VIDEO_MAX_WIDTH), int(settings.RFR_VIDEO_MAX_HEIGHT)
    duration = float(settings.RFR_VIDEO_MAX_DURATION_S)
    return VideoLimits(
        max_bytes=int(settings.RFR_VIDEO_MAX_BYTES),
        max_duration_s=duration,
        # A frame may be as large as the stated width and height, whichever way round (portrait phones).
        max_width=max(width, height),
        max_height=max(width, height),
        max_pixels=width * height,
        max_frames=int(duration * 240),
    )


def video_sample_fps(*, every_frame: bool = False) -> float | None:
    """Frames analysed per second: RFR_VIDEO_SAMPLE_FPS, or every frame (None) on request or when it is 0."""
    rate = float(settings.RFR_VIDEO_SAMPLE_FPS)
    return None if every_frame or rate <= 0 else rate


def video_rejection_error(rejected: VideoRejected) -> ApplicationError:
    """Too big, too long or too many pixels is 413; not a video rfr reads is 415; corrupt, truncated or
    empty is 400. The engine's message says what a person can do."""
    message = rejected.message
    if isinstance(rejected, VideoTooLarge | VideoTooLong | VideoTooManyPixels):
        return PayloadTooLarge(rejected.code, message)
    if isinstance(rejected, UnsupportedVideo | NoVideoStream):
        return UnsupportedMediaType(rejected.code, message)
    return InvalidInput(rejected.code, message)


# --- Access: everything under a video is reached through its case (404 for outsiders) -----------------------


def video_get_for_user(*, user: AnyUser, video_id: int, perm: str = VIEW_CASE) -> Video:
    video = Video.objects.select_related("uploaded_by").filter(pk=video_id).first()
    if video is None:
        raise Http404("No such video.")
    video.case = case_get_for_user(user=user, case_id=video.case_id, perm=perm)
    return video


def track_get_for_user(*, user: AnyUser, track_id: int, perm: str = VIEW_CASE) -> VideoTrack:
    track = VideoTrack.objects.select_related("video").filter(pk=track_id).first()
    if track is None:
        raise Http404("No such track.")
    track.video.case = case_get_for_user(user=user, case_id=track.video.case_id, perm=perm)
    return track


def merge_get_for_user(*, user: AnyUser, merge_id: int, perm: str = VIEW_CASE) -> TrackMerge:
    merge = TrackMerge.objects.select_related("video", "first", "second").filter(pk=merge_id).first()
    if merge is None:
        raise Http404("No such merge proposal.")
    merge.video.case = case_get_for_user(user=user, case_id=merge.video.case_id, perm=perm)
    return merge


# --- Upload -----------------------------------------------------------------------------------------------


def _sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    for block in iter(lambda: handle.read(1024 * 1024), b""):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()


def video_upload(
    *,
    case: Case,
    uploaded_by: AbstractBaseUser,
    file: IO[bytes],
    size: int,
    filename: str,
    source: str,
    lawfully_held: bool,
    description: str = "",
    captured_at: datetime | None = None,
    every_frame: bool = False,
    request: HttpRequest | None = None,
) -> Video:
    """Store the footage unchanged, record it, and queue its processing. Refused before anything is stored:
    a closed case, no lawful-holding statement, too big (413), not a video rfr decodes (415), corrupt or
    truncated (400), too long or too large a picture (413)."""
    case_require_open(case=case, action="adding footage")
    text_limit_check("probe_description", description.strip(), label="description")
    if source not in Probe.Source.values:
        message = f"Choose where the footage came from: one of {', '.join(Probe.Source.values)}."
        raise InvalidInput("invalid_source", message, fields={"source": [message]})
    if not lawfully_held:
        raise InvalidInput(
            "lawful_statement_required",
            "Confirm that the footage is lawfully held before uploading it; rfr searches lawfully held material only.",
        )
    limits = video_limits()
    if size > limits.max_bytes:
        raise PayloadTooLarge(
            "file_too_large",
            f"The file is {megabytes(size)}; footage may be at most {megabytes(limits.max_bytes)}."
            " Export a shorter part of it.",
        )
    if size == 0:
        raise InvalidInput("empty_file", "The file is empty.")
    try:
        # Opening, reading the streams and decoding a first frame proves it is footage rfr can process.
        file.seek(0)
        info = video_inspect(file, limits=limits)
    except VideoRejected as exc:
        raise video_rejection_error(exc) from None
    if info.container in STILL_IMAGE_CONTAINERS or info.container.endswith("_pipe"):
        # FFmpeg reads a photo as a one-frame video; it belongs in the case as a probe image.
        raise UnsupportedMediaType(
            "still_image", "This file is a still image, not footage: add it to the case as a probe image."
        )
    digest = _sha256_of(file)
    sample_fps = video_sample_fps(every_frame=every_frame)
    queue_require_available()
    video = Video(
        case=case,
        uploaded_by=uploaded_by,  # type: ignore[misc]
        source=source,
        description=description.strip(),
        captured_at=captured_at,
        lawfully_held=True,
        original_name=(filename or "")[:255],
        container=info.container[:64],
        codec=info.codec[:64],
        size_bytes=size,
        sha256=digest,
        width=info.width,
        height=info.height,
        fps=round(info.fps, 3),
        duration_s=round(info.duration_s, 3),
        frame_count=info.frame_count,
        sample_fps=sample_fps,
        frames_total=info.sampled_count(sample_fps),
        heartbeat_at=timezone.now(),
    )
    file.seek(0)
    with atomic_with_files():
        stored_file_save(video.original, "original", File(file))
        video.save()
        audit_event_record(
            action=AuditAction.VIDEO_UPLOADED,
            actor=uploaded_by,
            target=video,
            case_id=case.pk,
            request=request,
            detail={
                "sha256": digest,
                "filename": video.original_name,
                "size_bytes": size,
                "video": info.to_dict(),
                "sample_fps": sample_fps,
                "source": source,
                "captured_at": captured_at.isoformat() if captured_at else None,
                "lawfully_held": True,
            },
        )
        task_enqueue_on_commit(
            TaskName.VIDEO_PROCESS, video.pk, on_failure=lambda: video_queue_failed(video_id=video.pk)
        )
    return video


def video_queue_failed(*, video_id: int) -> None:
    """The broker refused the task after the video committed: clear its heartbeat for the re-queue task."""
    Video.objects.filter(pk=video_id, status=Video.Status.PENDING).update(heartbeat_at=None)


# --- Processing: sampled frames in resumable chunks, then tracks ----------------------------------------------


def _video_fail(*, video_id: int, code: str, message: str) -> None:
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.status in {Video.Status.DONE, Video.Status.FAILED}:
            return
        video.status = Video.Status.FAILED
        video.error_code = code
        video.error_message = message
        video.processed_at = timezone.now()
        video.save(update_fields=["status", "error_code", "error_message", "processed_at"])
        audit_event_record(
            action=AuditAction.VIDEO_FAILED,
            actor=video.uploaded_by,
            target=video,
            case_id=video.case_id,
            detail={"code": code, "message": message, "frames_done": video.frames_done},
        )


def _jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - encoding a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode an image")
    return buffer.tobytes()


def png_encode(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover
        raise RuntimeError("could not encode an image")
    return buffer.tobytes()


def _chunk_store(*, video_id: int, chunk: Sequence[FrameFaces], pack_key: str) -> bool:
    """Store one chunk of analysed frames with the progress, in one transaction. Frames at or before the
    last stored one (a redelivered message racing a live run) are skipped. False if the video is gone or no
    longer processing (stop)."""
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.status != Video.Status.PROCESSING:
            return False
        fresh = [frame for frame in chunk if frame.index > video.last_frame_index]
        if not fresh:
            return True
        VideoFace.objects.bulk_create(
            [
                VideoFace(
                    video=video,
                    frame_index=frame.index,
                    time_s=round(frame.time_s, 4),
                    face_index=i,
                    box=[round(float(v), 1) for v in face.box],
                    landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
                    detector_score=round(float(face.score), 4),
                    quality=face.quality.to_dict(),
                    template=None if face.template is None else np.asarray(face.template, dtype="<f4").tobytes(),
                    pack_key=pack_key,
                    shot=frame.shot,
                    crop=_jpeg(face.aligned),
                )
                for frame in fresh
                for i, face in enumerate(frame.faces)
            ]
        )
        video.frames_done += len(fresh)
        video.last_frame_index = fresh[-1].index
        video.frames_total = max(video.frames_total, video.frames_done)
        video.heartbeat_at = timezone.now()
        video.save(update_fields=["frames_done", "last_frame_index", "frames_total", "heartbeat_at"])
    return True


def video_frames_analyse(*, video_id: int, max_chunks: int | None = None) -> bool:
    """Analyse the video's sampled frames after the last stored one, storing each chunk of
    RFR_VIDEO_CHUNK_FRAMES frames with the progress as it goes. True when every frame is analysed; False when
    it stopped early (after `max_chunks` chunks: one bounded step of the work, committed exactly as a worker
    that died after it would have left it), or the video was deleted, failed or refused meanwhile."""
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.status in {Video.Status.DONE, Video.Status.FAILED}:
            return False
        if video.status != Video.Status.PROCESSING:
            video.status = Video.Status.PROCESSING
        video.heartbeat_at = timezone.now()
        video.save(update_fields=["status", "heartbeat_at"])
    engine = active_engine()
    chunk_size = int(settings.RFR_VIDEO_CHUNK_FRAMES)
    chunks = 0
    try:
        with video.original.open("rb") as handle:
            frames: Iterator[FrameFaces] = video_faces(
                engine, handle, sample_fps=video.sample_fps, start_index=video.last_frame_index + 1
            )
            chunk: list[FrameFaces] = []
            for frame in frames:
                chunk.append(frame)
                if len(chunk) >= chunk_size:
                    if not _chunk_store(video_id=video_id, chunk=chunk, pack_key=engine.pack.key):
                        return False
                    chunk, chunks = [], chunks + 1
                    if max_chunks is not None and chunks >= max_chunks:
                        return False
            if chunk and not _chunk_store(video_id=video_id, chunk=chunk, pack_key=engine.pack.key):
                return False
    except FileNotFoundError:
        _video_fail(
            video_id=video_id, code="original_missing", message="The stored footage could not be read. Upload it again."
        )
        return False
    except VideoRejected as exc:
        _video_fail(video_id=video_id, code=exc.code, message=exc.message)
        return False
    return True


def _track_faces(video: Video) -> list[TrackFace]:
    faces = []
    for row in video.faces.order_by("frame_index", "face_index").only(
        "pk", "frame_index", "time_s", "box", "template", "quality", "shot"
    ):
        x, y, w, h = (float(v) for v in row.box)
        faces.append(
            TrackFace(
                ref=row.pk,
                frame_index=row.frame_index,
                time_s=row.time_s,
                box=(x, y, w, h),
                template=None
                if row.template is None
                else np.frombuffer(bytes(row.template), dtype="<f4").astype(np.float32),
                quality=float(row.quality.get("usability", 0.0)),
                uncertain="uncertain" in row.quality.get("warnings", []),
                shot=row.shot,
            )
        )
    return faces


def video_tracks_store(*, video_id: int) -> None:
    """Build the tracks from the stored faces (a pure function of them), store them with their best shots
    and merge proposals, and mark the video done with its audit event. Replaces tracks of an earlier attempt
    that died before committing, so running it twice gives the same tracks."""
    video = Video.objects.filter(pk=video_id).first()
    if video is None or video.status != Video.Status.PROCESSING:
        return
    faces = _track_faces(video)
    tracks = tracks_build(faces)
    best_shots = int(settings.RFR_VIDEO_BEST_SHOTS)
    proposals = track_merge_proposals(tracks, k=best_shots)
    pack_key = video.faces.values_list("pack_key", flat=True).first() or active_engine().pack.key
    with atomic_with_files():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.status != Video.Status.PROCESSING:
            return
        video.tracks.all().delete()
        crops = {row.pk: bytes(row.crop) for row in video.faces.only("pk", "crop")}
        stored: dict[int, VideoTrack] = {}
        for track in sorted(tracks, key=lambda t: (t.first_index, t.number)):
            row = VideoTrack.objects.create(
                video=video,
                number=len(stored) + 1,
                first_frame=track.first_index,
                last_frame=track.last_index,
                first_time_s=round(track.first_time_s, 4),
                last_time_s=round(track.last_time_s, 4),
                face_count=len(track.faces),
            )
            row.faces.set([face.ref for face in track.faces])
            for rank, shot in enumerate(track.best_shots(best_shots), start=1):
                item = TrackShot(track=row, face_id=shot.ref, rank=rank, quality_score=round(shot.quality, 4))
                stored_file_save(item.aligned_crop, "shot.jpg", ContentFile(crops[shot.ref]))
                item.save()
            stored[track.number] = row
        TrackMerge.objects.bulk_create(
            [
                TrackMerge(
                    video=video,
                    first=stored[p.first],
                    second=stored[p.second],
                    similarity=round(p.similarity, 4),
                )
                for p in proposals
            ]
        )
        video.status = Video.Status.DONE
        video.pack_key = pack_key
        video.processed_at = timezone.now()
        video.error_code = "" if faces else "no_face"
        video.error_message = "" if faces else NO_FACE_MESSAGE
        video.save(update_fields=["status", "pack_key", "processed_at", "error_code", "error_message"])
        audit_event_record(
            action=AuditAction.VIDEO_PROCESSED,
            actor=video.uploaded_by,
            target=video,
            case_id=video.case_id,
            detail={
                "frames": video.frames_done,
                "faces": len(faces),
                "tracks": len(stored),
                "merge_proposals": len(proposals),
                "sample_fps": video.sample_fps,
                "pack_key": pack_key,
            },
        )


def video_process(*, video_id: int) -> None:
    """The whole processing of a video, resuming where an earlier run stopped. Safe to run twice."""
    try:
        finished = video_frames_analyse(video_id=video_id)
        if finished:
            video_tracks_store(video_id=video_id)
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries and resumes after the last stored frame
    except Exception:
        logger.exception("video %s could not be processed", video_id)
        _video_fail(
            video_id=video_id,
            code="processing_error",
            message="The footage could not be processed. Try another copy, or report the fault.",
        )


# --- Viewing ----------------------------------------------------------------------------------------------


def video_view_record(
    *, video: Video, viewer: AbstractBaseUser, shown: str, request: HttpRequest | None = None, **detail: Any
) -> None:
    """Every view of footage (the original, a frame, a track's shots) is on the record, before it is sent."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.VIDEO_VIEWED,
            actor=viewer,
            target=video,
            case_id=video.case_id,
            request=request,
            detail={"video_id": video.pk, "shown": shown, **detail},
        )


def parse_time_code(raw: Any) -> float:
    """A time code in seconds ("12.4") or as m:ss(.s) / h:mm:ss(.s); a 400 otherwise."""
    text = str(raw if raw is not None else "").strip()
    try:
        parts = [float(p) for p in text.split(":")] if text else []
    except ValueError:
        parts = []
    if not parts or len(parts) > 3 or any(p < 0 or not np.isfinite(p) for p in parts):
        raise InvalidInput("invalid_time", "Give the time code in seconds (12.4) or as minutes:seconds (0:12.4).")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def time_code(seconds: float) -> str:
    """Seconds as m:ss.ss (h:mm:ss.ss past an hour): how a time code reads on pages and in the report."""
    minutes, secs = divmod(max(0.0, float(seconds)), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


# --- Reads ------------------------------------------------------------------------------------------------


def videos_of_case(*, case: Case) -> QuerySet[Video]:
    return case.videos.select_related("uploaded_by")


def tracks_of_video(*, video: Video) -> QuerySet[VideoTrack]:
    return video.tracks.filter(merged_into__isnull=True).prefetch_related("shots__face")


def video_progress(video: Video) -> dict[str, Any]:
    """What the progress bar polls: frames analysed out of the total, then the tracks."""
    if video.status == Video.Status.PROCESSING:
        if video.frames_done >= video.frames_total and video.frames_total:
            text = "Building the tracks"
        else:
            text = f"Frames analysed: {video.frames_done} of {video.frames_total}"
    else:
        text = video.get_status_display()
    return {
        "id": video.pk,
        "status": video.status,
        "status_text": text,
        "progress": video.progress,
        "frames_done": video.frames_done,
        "frames_total": video.frames_total,
        "tracks": video.tracks.filter(merged_into__isnull=True).count() if video.status == Video.Status.DONE else 0,
        "error": {"code": video.error_code, "message": video.error_message} if video.error_code else None,
    }
