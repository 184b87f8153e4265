"""REST API of video evidence, mounted at /api/ with the other case routes: upload and list a case's footage,
read a video's progress, tracks and merge proposals, take a frame as a still probe, decide a merge, and search
a track. As everywhere under a case, objects are reached through the case (404 for outsiders) and writes go
to the services in cases.video; a track search is an ordinary search of the track's fused face.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import video as videos
from cases import video_review as review
from cases.access import case_get_for_user
from cases.api import ProbeSerializer, SearchCreateSerializer, SearchSerializer, _django_request, search_create_response
from cases.models import Probe, TrackMerge, Video, VideoTrack
from cases.permissions import SEARCH_CASE
from cases.video import time_code
from rfr.limits import text_limit


class TrackShotSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    frame_index = serializers.IntegerField(source="face.frame_index")
    time_s = serializers.FloatField(source="face.time_s")
    time_code = serializers.SerializerMethodField()
    quality = serializers.FloatField(source="quality_score")

    def get_time_code(self, shot: Any) -> str:
        return time_code(shot.face.time_s)


class TrackSerializer(serializers.ModelSerializer):
    shots = TrackShotSerializer(many=True, read_only=True)
    merged_into = serializers.IntegerField(source="merged_into_id", allow_null=True, read_only=True)
    first_time_code = serializers.SerializerMethodField()
    last_time_code = serializers.SerializerMethodField()

    class Meta:
        model = VideoTrack
        fields = [
            "id",
            "number",
            "first_frame",
            "last_frame",
            "first_time_s",
            "last_time_s",
            "first_time_code",
            "last_time_code",
            "face_count",
            "merged_into",
            "shots",
        ]

    def get_first_time_code(self, track: VideoTrack) -> str:
        return time_code(track.first_time_s)

    def get_last_time_code(self, track: VideoTrack) -> str:
        return time_code(track.last_time_s)


class TrackMergeSerializer(serializers.ModelSerializer):
    first_track = serializers.IntegerField(source="first.number", read_only=True)
    second_track = serializers.IntegerField(source="second.number", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", default=None, read_only=True)

    class Meta:
        model = TrackMerge
        fields = [
            "id",
            "first",
            "second",
            "first_track",
            "second_track",
            "similarity",
            "status",
            "decided_by",
            "decided_at",
        ]


class VideoSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    progress = serializers.IntegerField(read_only=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = [
            "id",
            "case",
            "original_name",
            "sha256",
            "size_bytes",
            "container",
            "codec",
            "width",
            "height",
            "fps",
            "duration_s",
            "frame_count",
            "sample_fps",
            "source",
            "description",
            "captured_at",
            "lawfully_held",
            "uploaded_by",
            "uploaded_at",
            "status",
            "progress",
            "frames_done",
            "frames_total",
            "pack_key",
            "processed_at",
            "error",
        ]

    def get_error(self, video: Video) -> dict[str, str] | None:
        return {"code": video.error_code, "message": video.error_message} if video.error_code else None


class VideoDetailSerializer(VideoSerializer):
    tracks = serializers.SerializerMethodField()
    merges = serializers.SerializerMethodField()

    class Meta(VideoSerializer.Meta):
        fields = [*VideoSerializer.Meta.fields, "tracks", "merges"]

    @extend_schema_field(TrackSerializer(many=True))
    def get_tracks(self, video: Video) -> list[dict[str, Any]]:
        if video.status != Video.Status.DONE:
            return []
        return list(TrackSerializer(videos.tracks_of_video(video=video), many=True).data)

    @extend_schema_field(TrackMergeSerializer(many=True))
    def get_merges(self, video: Video) -> list[dict[str, Any]]:
        merges = video.merges.select_related("first", "second", "decided_by")
        return list(TrackMergeSerializer(merges, many=True).data)


class VideoUploadSerializer(serializers.Serializer):
    video = serializers.FileField(help_text="MP4, MOV, AVI, MKV, MPEG-TS or Dahua DAV; stored unchanged.")
    source = serializers.ChoiceField(choices=Probe.Source.choices)  # type: ignore[assignment]
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=text_limit("probe_description")
    )
    captured_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    lawfully_held = serializers.BooleanField(
        help_text="Must be true: the uploader states the footage is lawfully held."
    )
    every_frame = serializers.BooleanField(
        required=False, default=False, help_text="Analyse every frame instead of RFR_VIDEO_SAMPLE_FPS a second."
    )


class StillCreateSerializer(serializers.Serializer):
    time_s = serializers.FloatField(min_value=0.0, help_text="Seconds from the first frame.")


class MergeDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["confirm", "reject"])


class CaseVideosAPI(APIView):
    parser_classes = [MultiPartParser, FormParser]
    queues_work = True  # answers 503 queue_unavailable when the broker is down (rfr.api_schema)

    @extend_schema(responses={200: VideoSerializer(many=True)})
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        return Response(VideoSerializer(videos.videos_of_case(case=case), many=True).data)

    @extend_schema(request={"multipart/form-data": VideoUploadSerializer}, responses={201: VideoSerializer})
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id, perm=SEARCH_CASE)
        serializer = VideoUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["video"]
        video = videos.video_upload(
            case=case,
            uploaded_by=request.user,  # type: ignore[arg-type]
            file=upload,
            size=upload.size or 0,
            filename=upload.name or "",
            source=data["source"],
            description=data["description"],
            captured_at=data["captured_at"],
            lawfully_held=data["lawfully_held"],
            every_frame=data["every_frame"],
            request=_django_request(request),
        )
        video.refresh_from_db()  # in eager mode processing has already run
        return Response(VideoSerializer(video).data, status=status.HTTP_201_CREATED)


class VideoAPI(APIView):
    @extend_schema(responses={200: VideoDetailSerializer})
    def get(self, request: Request, video_id: int) -> Response:
        video = videos.video_get_for_user(user=request.user, video_id=video_id)
        if video.status == Video.Status.DONE:
            videos.video_view_record(
                video=video,
                viewer=request.user,  # type: ignore[arg-type]
                shown="tracks",
                request=_django_request(request),
                via="api",
            )
        return Response(VideoDetailSerializer(video).data)


class VideoStillsAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    queues_work = True

    @extend_schema(
        request=StillCreateSerializer,
        responses={201: ProbeSerializer},
        description="Take the frame at a time code as a still probe, processed like an upload.",
    )
    def post(self, request: Request, video_id: int) -> Response:
        video = videos.video_get_for_user(user=request.user, video_id=video_id, perm=SEARCH_CASE)
        serializer = StillCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        probe = review.video_frame_grab(
            video=video,
            time_s=serializer.validated_data["time_s"],
            user=request.user,  # type: ignore[arg-type]
            request=_django_request(request),
        )
        probe.refresh_from_db()
        return Response(ProbeSerializer(probe).data, status=status.HTTP_201_CREATED)


class TrackSearchesAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    queues_work = True

    @extend_schema(
        request=SearchCreateSerializer,
        responses={201: SearchSerializer},
        description="Search a track: its fused template, on a still probe that records the shots and time codes.",
    )
    def post(self, request: Request, track_id: int) -> Response:
        track = videos.track_get_for_user(user=request.user, track_id=track_id, perm=SEARCH_CASE)
        return search_create_response(
            face_of=lambda: review.track_search_face(track=track, user=request.user, request=_django_request(request)),  # type: ignore[arg-type]
            request=request,
        )


class MergeDecisionAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(request=MergeDecisionSerializer, responses={200: TrackMergeSerializer})
    def post(self, request: Request, merge_id: int) -> Response:
        merge = videos.merge_get_for_user(user=request.user, merge_id=merge_id, perm=SEARCH_CASE)
        serializer = MergeDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decided = review.track_merge_decide(
            merge=merge,
            user=request.user,  # type: ignore[arg-type]
            confirm=serializer.validated_data["decision"] == "confirm",
            request=_django_request(request),
        )
        return Response(TrackMergeSerializer(decided).data)
