"""Video evidence on the workbench (cases.video): upload through the page and the API, processing into tracks
with the real engine, resuming after a stopped run, searching a track, merges, stills, and every refusal
storing nothing. Real clips from ../shared/data/video; bad files are made here."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from cases.housekeeping import storage_orphans_find, work_requeue
from cases.lifecycle import case_close
from cases.models import Case, Probe, ProbeFace, Search, TrackMerge, TrackShot, Video, VideoFace, VideoTrack
from cases.retention import cases_purge_expired
from cases.video import video_frames_analyse, video_process
from cases.video_report import search_video_section
from cases.video_review import track_search_face, video_frame_grab
from rfr.limits import request_body_limit
from search.enrolment import gallery_image_enrol
from search.galleries import gallery_create
from tests.factories import client_for
from tests.video_factories import audio_only_bytes, clip_bytes, video_objects_create

VIDEO_DIR = Path(settings.RFR_FACES_DATA).parent / "video"
HAMILTON = VIDEO_DIR / "real" / "short_hamilton_clip.mp4"
SYNTHETIC = VIDEO_DIR / "synthetic" / "dev_000.mp4"
REFERENCE_PHOTO = VIDEO_DIR / "real" / "reference" / "obama.jpg"

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def video_env(gallery_env: Path, settings: Any) -> Path:
    if not HAMILTON.is_file():
        pytest.skip(f"shared video data not found at {VIDEO_DIR}")
    settings.RFR_VIDEO_CHUNK_FRAMES = 10
    return gallery_env


def _api_upload(client: Any, case: Any, data: bytes, name: str, **fields: Any) -> Any:
    payload = {
        "video": SimpleUploadedFile(name, data),
        "source": "cctv",
        "description": "Camera 3, high street",
        "lawfully_held": "true",
        **fields,
    }
    return client.post(f"/api/cases/{case.pk}/videos/", payload, format="multipart")


def _actions(case: Any) -> list[str]:
    return list(AuditEvent.objects.filter(case_id=case.pk).order_by("pk").values_list("action", flat=True))


def _media_videos(root: Path) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "videos"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_hamilton_clip_api_upload_processing_and_track_search_finds_the_reference_at_rank_1(
    video_env: Path, people: dict[str, Any], case: Any, run_on_commit: Any, engine: Any
) -> None:
    gallery = gallery_create(name="Reference photos", kind="custody", provenance="video README references")
    for name in ("lin-manuel-miranda.png", "obama.jpg", "alex_lacamoire_img1.jpg"):
        path = VIDEO_DIR / "real" / "reference" / name
        gallery_image_enrol(
            gallery=gallery,
            data=path.read_bytes(),
            subject_ref=name.split(".")[0],
            original_filename=name,
            engine=engine,
        )
    client = client_for(people["investigator"])
    data = HAMILTON.read_bytes()
    response = run_on_commit(lambda: _api_upload(client, case, data, "short_hamilton_clip.mp4"))
    assert response.status_code == 201, response.json()
    video = Video.objects.get(pk=response.json()["id"])
    assert video.status == Video.Status.DONE, video.error_message
    with video.original.open("rb") as handle:
        assert handle.read() == data  # stored unchanged
    assert video.sha256 == response.json()["sha256"]
    assert video.frames_done == video.frames_total > 40  # 9 s at 5 frames a second
    tracks = list(VideoTrack.objects.filter(video=video, merged_into__isnull=True).order_by("-face_count"))
    assert tracks and all(t.shots.exists() for t in tracks)
    # Shot 3 (frames 82-210) is Miranda, the longest track; its fused search finds his photo at rank 1.
    longest = tracks[0]
    assert longest.first_frame >= 82 and longest.last_frame <= 215  # within shot 3: tracks never cross a cut
    detail = client.get(f"/api/videos/{video.pk}/").json()
    assert detail["tracks"][0]["shots"][0]["time_code"].startswith("0:0")
    search_response = run_on_commit(
        lambda: client.post(
            f"/api/tracks/{longest.pk}/searches/",
            {"galleries": [gallery.pk], "justification": "Identify the performer for the test."},
            format="json",
        )
    )
    assert search_response.status_code == 201, search_response.json()
    search = Search.objects.get(pk=search_response.json()["id"])
    assert search.status == Search.Status.DONE
    assert search.candidates.get(rank=1).subject_ref == "lin-manuel-miranda"
    face = search.face
    assert face.origin == ProbeFace.Origin.TRACK
    source = face.probe.video_source
    assert source is not None
    assert face.probe.video_id == video.pk and source["video_sha256"] == video.sha256 and source["fused"] is True
    still = client.get(f"/api/probes/{face.probe_id}/").json()
    assert still["video"] == video.pk and still["video_source"]["kind"] == "track"
    assert 1 <= len(source["shots"]) == longest.shots.count() <= settings.RFR_VIDEO_BEST_SHOTS
    assert {"video.uploaded", "video.processed", "video.viewed", "video.track_prepared", "search.requested"} <= set(
        _actions(case)
    )
    # A second search of the same track reuses its still probe.
    assert track_search_face(track=longest, user=people["investigator"]).pk == face.pk
    # Downstream exactly as for a still: two-person review, the report (with the video's facts), the audit.
    candidate = search.candidates.get(rank=1)
    first = client.post(
        f"/api/candidates/{candidate.pk}/decisions/",
        {"decision": "possible_match", "rationale": "Same hairline and brows."},
        format="json",
    )
    assert first.status_code == 201, first.json()
    second = client_for(people["supervisor"]).post(
        f"/api/candidates/{candidate.pk}/decisions/",
        {"decision": "possible_match", "rationale": "Agree: same ears and brows."},
        format="json",
    )
    assert second.status_code == 201, second.json()
    candidate.refresh_from_db()
    assert candidate.outcome == candidate.Outcome.RELEASED
    section = search_video_section(search)
    assert section is not None and section.kind == "track" and section.fused
    assert ("SHA-256 of the video", video.sha256) in section.lines()
    assert section.shots and all(shot.crop_jpeg[:2] == b"\xff\xd8" for shot in section.shots)
    pages = Client()
    pages.force_login(people["investigator"])
    pdf = pages.get(f"/searches/{search.pk}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    if shutil.which("pdftotext"):  # the video's facts are printed in the probe section of the report
        printed = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout
        assert b"Video source" in printed and video.sha256.encode() in printed and b"Best shots used" in printed
    assert {"candidate.decided", "search.report_downloaded"} <= set(_actions(case))


def test_page_upload_of_a_synthetic_clip_shows_progress_tracks_and_the_frame_viewer(
    video_env: Path, people: dict[str, Any], case: Any, run_on_commit: Any, settings: Any
) -> None:
    settings.RFR_VIDEO_SAMPLE_FPS = 2.0
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # spooled to a temporary file, as large footage is
    client = Client()
    client.force_login(people["investigator"])
    page = client.get(f"/cases/{case.pk}/videos/upload/")
    assert page.status_code == 200 and b"lawfully held" in page.content
    with open(SYNTHETIC, "rb") as handle:
        response = run_on_commit(
            lambda: client.post(
                f"/cases/{case.pk}/videos/upload/",
                {"video": handle, "source": "cctv", "lawfully_held": "on", "description": "dev clip"},
            )
        )
    video = Video.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/videos/{video.pk}/"
    assert video.status == Video.Status.DONE and video.sample_fps == 2.0 and video.width == 1280
    status = client.get(f"/videos/{video.pk}/status.json").json()
    assert status["status"] == "done" and status["progress"] == 100 and status["tracks"] >= 1
    detail = client.get(f"/videos/{video.pk}/")
    assert b"Track 1" in detail.content
    track = video.tracks.order_by("-face_count").first()
    assert track is not None
    assert client.get(f"/tracks/{track.pk}/shots/1.jpg")["Content-Type"] == "image/jpeg"
    viewer = client.get(f"/videos/{video.pk}/frame/?t=2.0")
    assert viewer.status_code == 200 and b"Next frame" in viewer.content and b"Previous frame" in viewer.content
    frame = client.get(f"/videos/{video.pk}/frame.png?t=2.0")
    assert frame["Content-Type"] == "image/png" and frame["X-Frame-Index"] == "50"
    workbench = client.get(f"/cases/{case.pk}/workbench/")
    assert f"/videos/{video.pk}/".encode() in workbench.content
    assert f"/videos/{video.pk}/".encode() in client.get(f"/cases/{case.pk}/").content  # the case page too
    # A frame taken as a still probe is processed like an upload; its provenance names the video and time.
    grabbed = run_on_commit(lambda: client.post(f"/videos/{video.pk}/grab/", {"t": "2.0"}))
    probe = Probe.objects.get(video=video)
    assert grabbed["Location"] == f"/probes/{probe.pk}/"
    assert probe.status == Probe.Status.DONE and probe.faces.exists()
    provenance = probe.video_source
    assert provenance is not None and provenance["video_sha256"] == video.sha256 and provenance["time_s"] == 2.0
    actions = _actions(case)
    assert {"video.uploaded", "video.processed", "video.viewed", "video.frame_grabbed", "probe.processed"} <= set(
        actions
    )
    timeline = client.get(f"/cases/{case.pk}/timeline/")
    assert timeline.status_code == 200 and b"video.uploaded" in timeline.content


def test_a_run_stopped_after_a_chunk_resumes_without_duplicates_and_gives_the_same_result(
    video_env: Path, people: dict[str, Any], case: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(people["investigator"])
    data = HAMILTON.read_bytes()
    # Queued but not run: the worker "dies" after its first chunk of 10 sampled frames.
    with django_capture_on_commit_callbacks(execute=False):
        interrupted = Video.objects.get(pk=_api_upload(client, case, data, "a.mp4").json()["id"])
        whole = Video.objects.get(pk=_api_upload(client, case, data, "b.mp4").json()["id"])
    assert video_frames_analyse(video_id=interrupted.pk, max_chunks=1) is False
    interrupted.refresh_from_db()
    assert interrupted.status == Video.Status.PROCESSING and interrupted.frames_done == 10
    stored_first = VideoFace.objects.filter(video=interrupted).count()
    assert interrupted.last_frame_index >= 0 and stored_first > 0
    video_process(video_id=interrupted.pk)  # the redelivered task resumes after the last stored frame
    video_process(video_id=interrupted.pk)  # and a redelivery after it finished changes nothing
    video_process(video_id=whole.pk)
    interrupted.refresh_from_db()
    whole.refresh_from_db()
    assert interrupted.status == whole.status == Video.Status.DONE
    assert interrupted.frames_done == whole.frames_done

    def faces(video: Video) -> list[tuple[int, int, str | None]]:
        return [
            (f.frame_index, f.face_index, None if f.template is None else bytes(f.template).hex()[:32])
            for f in VideoFace.objects.filter(video=video).order_by("frame_index", "face_index")
        ]

    assert faces(interrupted) == faces(whole)

    def tracks(video: Video) -> list[tuple[int, int, int, int]]:
        return [(t.number, t.first_frame, t.last_frame, t.face_count) for t in video.tracks.order_by("number")]

    assert tracks(interrupted) == tracks(whole)
    assert _actions(case).count("video.processed") == 2


def test_merge_proposals_are_decided_by_a_person_and_audited(
    gallery_env: Path, people: dict[str, Any], case: Any
) -> None:
    world = _world(case)
    merge = world.extra["merge"]
    outsider = client_for(people["outsider"])
    assert outsider.post(f"/api/merges/{merge.pk}/decision/", {"decision": "confirm"}, format="json").status_code == 404
    client = client_for(people["investigator"])
    response = client.post(f"/api/merges/{merge.pk}/decision/", {"decision": "confirm"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "confirmed"
    assert VideoTrack.objects.get(pk=merge.second_id).merged_into_id == merge.first_id
    again = client.post(f"/api/merges/{merge.pk}/decision/", {"decision": "reject"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "merge_decided"
    assert TrackMerge.objects.get(pk=merge.pk).decided_by == people["investigator"]
    assert "video.merge_decided" in _actions(case)


def _world(case: Any) -> Any:
    """The permission matrix's video objects (no face engine) under `case`."""
    world = SimpleNamespace(case=case, extra={})
    video_objects_create(world)
    return world


def _too_long(settings: Any) -> None:
    settings.RFR_VIDEO_MAX_DURATION_S = 0.5


def _too_big(settings: Any) -> None:
    settings.RFR_VIDEO_MAX_BYTES = 1024


def _too_wide(settings: Any) -> None:
    settings.RFR_VIDEO_MAX_WIDTH = 64
    settings.RFR_VIDEO_MAX_HEIGHT = 32


BAD_INPUTS = [
    pytest.param(lambda: os.urandom(4096), None, 400, "corrupt_video", id="random-bytes"),
    pytest.param(lambda: HAMILTON.read_bytes()[:200_000], None, 400, "corrupt_video", id="truncated"),
    pytest.param(audio_only_bytes, None, 415, "no_video_stream", id="audio-only"),
    pytest.param(
        lambda: (VIDEO_DIR / "real" / "reference" / "obama.jpg").read_bytes(), None, 415, "still_image", id="jpeg"
    ),
    pytest.param(lambda: b"", None, 400, "empty_file", id="empty"),
    pytest.param(clip_bytes, _too_long, 413, "video_too_long", id="too-long"),
    pytest.param(lambda: clip_bytes(frames=30), _too_big, 413, "file_too_large", id="too-big"),
    pytest.param(clip_bytes, _too_wide, 413, "video_too_many_pixels", id="too-many-pixels"),
]


@pytest.mark.parametrize(("make", "limit", "status", "code"), BAD_INPUTS)
def test_bad_footage_is_refused_through_the_api_and_the_page_with_nothing_stored(
    video_env: Path, people: dict[str, Any], case: Any, settings: Any, make: Any, limit: Any, status: int, code: str
) -> None:
    if limit is not None:
        limit(settings)
    data = make()
    before = _actions(case)
    response = _api_upload(client_for(people["investigator"]), case, data, "bad.mp4")
    if code == "empty_file":
        # DRF refuses an empty file itself, before the service: still a 400 with nothing stored.
        assert response.status_code == 400
    else:
        assert (response.status_code, response.json()["error"]) == (status, code), response.json()
        assert response.json()["message"]
    client = Client()
    client.force_login(people["investigator"])
    page = client.post(
        f"/cases/{case.pk}/videos/upload/",
        {"video": SimpleUploadedFile("bad.mp4", data), "source": "cctv", "lawfully_held": "on"},
        follow=True,
    )
    assert page.status_code == 200
    assert Video.objects.count() == 0 and not _media_videos(video_env)
    assert _actions(case) == before


def test_upload_needs_the_lawful_holding_statement_and_an_open_case(
    video_env: Path, people: dict[str, Any], case: Any
) -> None:
    response = _api_upload(client_for(people["investigator"]), case, clip_bytes(), "clip.mp4", lawfully_held="false")
    assert response.status_code == 400 and response.json()["error"] == "lawful_statement_required"
    assert client_for(people["outsider"]).get(f"/api/cases/{case.pk}/videos/").status_code == 404
    assert Video.objects.count() == 0


def test_request_body_cap_lets_footage_through_on_the_video_upload_routes_only(settings: Any) -> None:
    settings.RFR_VIDEO_MAX_BYTES = 500 * 1024 * 1024
    envelope = settings.RFR_REQUEST_ENVELOPE_BYTES
    assert request_body_limit("/cases/7/videos/upload/") == 500 * 1024 * 1024 + envelope
    assert request_body_limit("/api/cases/7/videos/") == 500 * 1024 * 1024 + envelope
    assert request_body_limit("/cases/7/workbench/upload/") == settings.RFR_MAX_UPLOAD_BYTES + envelope
    assert request_body_limit("/api/videos/7/stills/") == settings.RFR_MAX_UPLOAD_BYTES + envelope


def test_footage_silent_for_too_long_is_sent_again_by_housekeeping(
    gallery_env: Path, people: dict[str, Any], case: Any
) -> None:
    world = _world(case)
    video = world.extra["video"]
    Video.objects.filter(pk=video.pk).update(status=Video.Status.PROCESSING, heartbeat_at=None)
    # Eager: the re-sent task runs at once and resumes; the matrix video has no real frames left to analyse.
    assert work_requeue()["videos"] == 1


def test_retention_deletes_a_closed_case_s_footage_its_stills_and_files(
    gallery_env: Path, people: dict[str, Any], case: Any, run_on_commit: Any
) -> None:
    world = _world(case)
    video = world.extra["video"]
    probe = run_on_commit(lambda: video_frame_grab(video=video, time_s=0.5, user=people["investigator"]))
    media = Path(settings.MEDIA_ROOT)
    files = [media / str(video.original.name), media / str(probe.original.name)]
    files += [media / str(shot.aligned_crop.name) for shot in TrackShot.objects.filter(track__video=video)]
    assert all(path.is_file() for path in files)
    case_close(case=case, closed_by=people["investigator"], reason="done")
    Case.objects.filter(pk=case.pk).update(
        closed_at=timezone.now() - timedelta(days=settings.RFR_CASE_RETENTION_DAYS + 1)
    )
    purged = run_on_commit(lambda: cases_purge_expired())
    assert purged[case.pk]["deleted"]["videos"] == 1 and purged[case.pk]["deleted"]["probes"] == 1
    assert not Video.objects.filter(case=case).exists() and not VideoFace.objects.exists()
    assert not any(path.exists() for path in files)


def test_the_orphan_sweep_covers_footage_files(gallery_env: Path, people: dict[str, Any], case: Any) -> None:
    world = _world(case)
    video = world.extra["video"]
    media = Path(settings.MEDIA_ROOT)
    orphan = media / "videos" / f"case-{case.pk}" / "ab" / "left-by-a-crash.mp4"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"not referenced")
    found = {item.name: item.kind for item in storage_orphans_find(grace_seconds=0)}
    assert found == {str(orphan.relative_to(media)): "video_original"}
    assert str(video.original.name) not in found
