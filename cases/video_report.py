"""What the search report shows for a search whose probe came from footage (cases.video): the video by name
and sha256, the time codes, and for a track search the best-shot frames that were fused into its template.

The PDF's layout belongs to cases.reports; this module only says what to show, so the layout can place it
(`search_video_section` returns None for a search of an ordinary still, and the report shows nothing more).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cases.models import Search, VideoFace
from cases.video import time_code


@dataclass(frozen=True)
class ReportShot:
    """One best shot fused into a track search: where it is in the video, its quality, its aligned crop."""

    track: int
    frame_index: int
    time_code: str
    quality: float
    crop_jpeg: bytes = field(repr=False)


@dataclass(frozen=True)
class VideoReportSection:
    video_id: int
    video_name: str
    video_sha256: str
    kind: str  # "track": a track's fused template; "frame": a frame taken as a still
    time_code: str  # of the still on the report (the best shot's frame, or the frame taken)
    frame_index: int
    tracks: list[int]
    first_time_code: str
    last_time_code: str
    fused: bool
    fusion: str
    shots: list[ReportShot]

    def lines(self) -> list[tuple[str, str]]:
        """The facts as (label, value) rows for the report's table."""
        rows = [
            ("Video", f"{self.video_name} (video #{self.video_id})"),
            ("SHA-256 of the video", self.video_sha256),
        ]
        if self.kind == "track":
            tracks = ", ".join(str(n) for n in self.tracks)
            rows += [
                ("Searched", f"track {tracks}, from {self.first_time_code} to {self.last_time_code}"),
                ("Template", f"fused from {len(self.shots)} best shot(s): {self.fusion}" if self.fused else "one shot"),
                ("Best shots used", "; ".join(f"{s.time_code} (frame {s.frame_index})" for s in self.shots)),
                ("Image shown", f"the best shot's frame at {self.time_code} (frame {self.frame_index})"),
            ]
        else:
            rows.append(("Frame", f"taken at {self.time_code} (frame {self.frame_index})"))
        return rows


def search_video_section(search: Search) -> VideoReportSection | None:
    """The video facts of a search whose probe was taken from footage; None for any other search."""
    probe = search.face.probe
    source = probe.video_source
    if probe.video_id is None or not source:
        return None
    shots: list[ReportShot] = []
    for used in source.get("shots", []):
        face = VideoFace.objects.filter(video_id=probe.video_id, pk=used.get("face_id")).only("crop").first()
        crop = bytes(face.crop) if face is not None else b""
        shots.append(
            ReportShot(
                track=int(used.get("track", 0)),
                frame_index=int(used["frame_index"]),
                time_code=str(used.get("time_code") or time_code(float(used["time_s"]))),
                quality=float(used.get("quality", 0.0)),
                crop_jpeg=crop,
            )
        )
    return VideoReportSection(
        video_id=int(source["video_id"]),
        video_name=str(source.get("video_name", "")),
        video_sha256=str(source["video_sha256"]),
        kind=str(source.get("kind", "frame")),
        time_code=str(source.get("time_code", "")),
        frame_index=int(source.get("frame_index", 0)),
        tracks=[int(n) for n in source.get("tracks", [])],
        first_time_code=str(source.get("first_time_code", "")),
        last_time_code=str(source.get("last_time_code", "")),
        fused=bool(source.get("fused", False)),
        fusion=str(source.get("fusion", "")),
        shots=shots,
    )
