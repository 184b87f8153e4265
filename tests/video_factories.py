"""Video objects for tests that need them without the face engine (the permission matrix), and small clips made
with PyAV for bad-input tests. The real clips live in ../shared/data/video and are never copied here."""

from __future__ import annotations

import hashlib
import io
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
from django.core.files.base import ContentFile

from cases.models import TrackMerge, TrackShot, Video, VideoFace, VideoTrack


def clip_bytes(*, frames: int = 10, size: tuple[int, int] = (96, 64), fps: int = 10, codec: str = "mpeg4") -> bytes:
    """A tiny synthetic clip (a moving grey square), in MP4."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 40, np.uint8)
            cv2.rectangle(image, (i * 4 % size[0], 10), (i * 4 % size[0] + 16, 26), (200, 200, 200), -1)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def audio_only_bytes() -> bytes:
    """One second of silence in an MP4 with no video stream."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream: Any = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), np.float32)
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def video_objects_create(world: Any) -> None:
    """A processed video with two tracks (one shot each) and a proposed merge under `world.case`, made directly
    (no face engine) so the permission matrix reaches every video URL quickly. Idempotent per world."""
    if "video" in world.extra:
        return
    data = clip_bytes()
    owner = world.case.owner
    video = Video(
        case=world.case,
        uploaded_by=owner,
        source="cctv",
        lawfully_held=True,
        original_name="clip.mp4",
        container="mov,mp4,m4a,3gp,3g2,mj2",
        codec="mpeg4",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=96,
        height=64,
        fps=10.0,
        duration_s=1.0,
        frame_count=10,
        sample_fps=5.0,
        status=Video.Status.DONE,
        frames_total=5,
        frames_done=5,
        last_frame_index=8,
        pack_key="test-pack@1",
    )
    video.original.save("original", ContentFile(data), save=False)
    video.save()
    ok, crop = cv2.imencode(".jpg", np.full((112, 112, 3), 128, np.uint8))
    assert ok
    tracks = []
    for number, frame_index in ((1, 0), (2, 6)):
        face = VideoFace.objects.create(
            video=video,
            frame_index=frame_index,
            time_s=frame_index / 10,
            face_index=0,
            box=[10.0, 10.0, 20.0, 20.0],
            landmarks=[[15.0, 15.0], [25.0, 15.0], [20.0, 20.0], [16.0, 25.0], [24.0, 25.0]],
            detector_score=0.9,
            quality={"warnings": [], "usability": 0.5},
            template=np.full(128, 1 / np.sqrt(128), "<f4").tobytes(),
            pack_key="test-pack@1",
            crop=crop.tobytes(),
        )
        track = VideoTrack.objects.create(
            video=video,
            number=number,
            first_frame=frame_index,
            last_frame=frame_index,
            first_time_s=face.time_s,
            last_time_s=face.time_s,
            face_count=1,
        )
        track.faces.set([face])
        shot = TrackShot(track=track, face=face, rank=1, quality_score=0.5)
        shot.aligned_crop.save("shot.jpg", ContentFile(crop.tobytes()), save=False)
        shot.save()
        tracks.append(track)
    merge = TrackMerge.objects.create(video=video, first=tracks[0], second=tracks[1], similarity=0.8)
    world.extra.update(video=video, track=tracks[0], merge=merge)
