"""Server-rendered pages of video evidence: upload footage into a case, watch its processing, review its tracks,
step through its frames, take a frame as a still probe, decide proposed merges, and search a track.

Thin, like cases.views: every page reaches its object through the case (404 for outsiders), writes go to
cases.video, and every image of footage is audited before it is sent. Stepping through frames is plain links
(previous / next frame, a time-code form), so it works from the keyboard and without JavaScript; an HTML5
<video> player is offered only for containers browsers play (MP4, WebM), and always beside the frame viewer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cases import video as videos
from cases import video_review as review
from cases.access import case_get_for_user, case_user_may
from cases.models import Probe, TrackShot, Video
from cases.permissions import SEARCH_CASE
from cases.video import time_code
from cases.views import IMAGE_HEADERS, _parse_capture_time, _upload_answer
from rfr.error_handling import error_return_to
from rfr.errors import ApplicationError, InvalidInput
from rfr.limits import megabytes

# Containers a browser's <video> element plays without plug-ins (H.264 in MP4, VP8/9 in WebM); others (AVI,
# MKV, MPEG-TS, DAV) are stepped through frame by frame only.
BROWSER_PLAYABLE = ("mov,mp4", "matroska,webm")


def _image(data: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("cases:video-upload", "case_id")
def video_upload(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id, perm=SEARCH_CASE)
    if request.method == "POST":
        upload = request.FILES.get("video")
        if upload is None:
            raise InvalidInput("video_required", "Choose a video file to upload.")
        video = videos.video_upload(
            case=case,
            uploaded_by=request.user,  # type: ignore[arg-type]
            file=upload,
            size=upload.size or 0,
            filename=upload.name or "",
            source=request.POST.get("source", ""),
            description=request.POST.get("description", ""),
            captured_at=_parse_capture_time(request.POST.get("captured_at", "")),
            lawfully_held=request.POST.get("lawfully_held") == "on",
            every_frame=request.POST.get("every_frame") == "on",
            request=request,
        )
        messages.success(request, f"{video.original_name} uploaded; finding and tracking faces.")
        return _upload_answer(request, reverse("cases:video", args=[video.pk]))
    return render(
        request,
        "cases/video_upload.html",
        {
            "case": case,
            "sources": Probe.Source.choices,
            "max_size": megabytes(int(videos.video_limits().max_bytes)),
            "limits": videos.video_limits(),
            "sample_fps": videos.video_sample_fps(),
        },
    )


@login_required
@require_GET
def video_detail(request: HttpRequest, video_id: int) -> HttpResponse:
    video = videos.video_get_for_user(user=request.user, video_id=video_id)
    tracks = list(videos.tracks_of_video(video=video)) if video.status == Video.Status.DONE else []
    if tracks:
        videos.video_view_record(video=video, viewer=request.user, shown="tracks", request=request)  # type: ignore[arg-type]
    return render(
        request,
        "cases/video_detail.html",
        {
            "case": video.case,
            "video": video,
            "tracks": [_track_view(t) for t in tracks],
            "merges": list(video.merges.select_related("first", "second", "decided_by")),
            "progress": videos.video_progress(video),
            "finished": video.status in {Video.Status.DONE, Video.Status.FAILED},
            "can_search": case_user_may(user=request.user, case=video.case, perm=SEARCH_CASE),
            "duration": time_code(video.duration_s),
            "stills": list(video.stills.order_by("pk")),
        },
    )


def _track_view(track: Any) -> dict[str, Any]:
    shots = list(track.shots.all())
    return {
        "track": track,
        "shots": [{"shot": s, "time_code": time_code(s.face.time_s)} for s in shots],
        "first": time_code(track.first_time_s),
        "last": time_code(track.last_time_s),
    }


@login_required
@require_GET
def video_status(request: HttpRequest, video_id: int) -> JsonResponse:
    video = videos.video_get_for_user(user=request.user, video_id=video_id)
    return JsonResponse(videos.video_progress(video))


@login_required
@require_GET
def video_original(request: HttpRequest, video_id: int) -> FileResponse:
    video = videos.video_get_for_user(user=request.user, video_id=video_id)
    try:
        handle = video.original.open("rb")
    except FileNotFoundError:
        raise Http404("The footage is no longer held.") from None
    try:
        videos.video_view_record(video=video, viewer=request.user, shown="original", request=request)  # type: ignore[arg-type]
    except BaseException:
        handle.close()
        raise
    content_type = "video/webm" if video.container.endswith("webm") else "video/mp4"
    response = FileResponse(handle, content_type=content_type)
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


def _time_param(request: HttpRequest) -> float:
    return videos.parse_time_code(request.GET.get("t", "0") or "0")


@login_required
@require_GET
@error_return_to("cases:video", "video_id")
def video_frame(request: HttpRequest, video_id: int) -> HttpResponse:
    """The frame viewer: one frame at a time code, with previous / next frame and a jump of a second."""
    video = videos.video_get_for_user(user=request.user, video_id=video_id)
    if video.status != Video.Status.DONE and not video.duration_s:
        raise InvalidInput("video_not_ready", "Wait until the footage has been inspected.")
    at = min(max(0.0, _time_param(request)), video.duration_s)
    step = 1.0 / (video.fps or 25.0)
    playable = any(video.container.startswith(kind) or video.container == kind for kind in BROWSER_PLAYABLE)
    return render(
        request,
        "cases/video_frame.html",
        {
            "case": video.case,
            "video": video,
            "at": round(at, 3),
            "time_code": time_code(at),
            "previous": round(max(0.0, at - step), 3),
            "next": round(min(video.duration_s, at + step), 3),
            "back_second": round(max(0.0, at - 1.0), 3),
            "forward_second": round(min(video.duration_s, at + 1.0), 3),
            "duration": time_code(video.duration_s),
            "playable": playable and video.codec in {"h264", "vp8", "vp9", "av1"},
            "can_search": case_user_may(user=request.user, case=video.case, perm=SEARCH_CASE),
        },
    )


@login_required
@require_GET
def video_frame_image(request: HttpRequest, video_id: int) -> HttpResponse:
    video = videos.video_get_for_user(user=request.user, video_id=video_id)
    try:
        at = _time_param(request)
        shown = review.video_frame_image(video=video, time_s=at, viewer=request.user, request=request)  # type: ignore[arg-type]
    except ApplicationError:
        raise Http404("No frame at that time code.") from None
    response = _image(shown.png, "image/png")
    response["X-Frame-Index"] = str(shown.index)
    return response


@login_required
@require_POST
@error_return_to("cases:video", "video_id")
def video_grab(request: HttpRequest, video_id: int) -> HttpResponse:
    video = videos.video_get_for_user(user=request.user, video_id=video_id, perm=SEARCH_CASE)
    at = videos.parse_time_code(request.POST.get("t", ""))
    probe = review.video_frame_grab(video=video, time_s=at, user=request.user, request=request)  # type: ignore[arg-type]
    messages.success(request, f"The frame at {time_code(at)} is now probe #{probe.pk}; looking for faces.")
    return HttpResponseRedirect(reverse("cases:probe", args=[probe.pk]))


@login_required
@require_GET
def track_detail(request: HttpRequest, track_id: int) -> HttpResponse:
    track = videos.track_get_for_user(user=request.user, track_id=track_id)
    video = track.video
    shots = review.track_shots(track)
    videos.video_view_record(
        video=video,
        viewer=request.user,  # type: ignore[arg-type]
        shown="track",
        request=request,
        track=track.number,
    )
    return render(
        request,
        "cases/video_track.html",
        {
            "case": video.case,
            "video": video,
            "track": track,
            "family": [t for t in review.track_family(track) if t.pk != track.pk],
            "shots": [{"shot": s, "time_code": time_code(s.face.time_s)} for s in shots],
            "first": time_code(track.first_time_s),
            "last": time_code(track.last_time_s),
            "can_search": case_user_may(user=request.user, case=video.case, perm=SEARCH_CASE),
            "searches": list(track.search_face.searches.order_by("-created_at")) if track.search_face else [],
        },
    )


@login_required
@require_GET
def track_shot_image(request: HttpRequest, track_id: int, rank: int) -> HttpResponse:
    track = videos.track_get_for_user(user=request.user, track_id=track_id)
    shot = TrackShot.objects.filter(track=track, rank=rank).first()
    if shot is None:
        raise Http404("No such shot.")
    try:
        with shot.aligned_crop.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise Http404("The shot is no longer held.") from None
    videos.video_view_record(
        video=track.video,
        viewer=request.user,  # type: ignore[arg-type]
        shown="shot",
        request=request,
        track=track.number,
        rank=rank,
    )
    return _image(data, "image/jpeg")


@login_required
@require_POST
@error_return_to("cases:track", "track_id")
def track_search(request: HttpRequest, track_id: int) -> HttpResponse:
    """Make (or reuse) the track's still probe with its fused template, then the ordinary search form."""
    track = videos.track_get_for_user(user=request.user, track_id=track_id, perm=SEARCH_CASE)
    face = review.track_search_face(track=track, user=request.user, request=request)  # type: ignore[arg-type]
    return HttpResponseRedirect(reverse("cases:face-search", args=[face.pk]))


@login_required
@require_POST
def merge_decide(request: HttpRequest, merge_id: int) -> HttpResponse:
    merge = videos.merge_get_for_user(user=request.user, merge_id=merge_id, perm=SEARCH_CASE)
    decision = request.POST.get("decision", "")
    if decision not in {"confirm", "reject"}:
        raise InvalidInput("invalid_decision", "Choose to confirm or to reject the merge.")
    review.track_merge_decide(merge=merge, user=request.user, confirm=decision == "confirm", request=request)  # type: ignore[arg-type]
    word = "merged" if decision == "confirm" else "kept apart"
    messages.success(request, f"Tracks {merge.first.number} and {merge.second.number} {word}.")
    return HttpResponseRedirect(reverse("cases:video", args=[merge.video_id]) + "#merges")
