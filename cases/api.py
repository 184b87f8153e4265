"""The REST API of cases: cases, their probes and faces, searches, candidates and decisions.

Thin views: each fetches its object through cases.access (404 for outsiders), hands writes to the services,
and answers with the output serializers beside it; input serializers check shape only, the services the rules.
Every refusal is JSON of one shape, {"error": code, "message": text[, "fields": {...}]}, written by
rfr.error_handling for whatever raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Team
from audit.models import AuditEvent
from audit.selectors import audit_events_for_reader
from cases import enhancement, probes, review, searches
from cases.access import (
    candidate_get_for_user,
    case_access_explain,
    case_get_for_user,
    cases_visible_to,
    face_get_for_user,
    probe_get_for_user,
    search_get_for_user,
)
from cases.duplicates import probe_duplicates_view
from cases.features import FEATURE_ORDER, FeatureAssessment
from cases.housekeeping import work_waiting_for_worker
from cases.lifecycle import case_create
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Case, Decision, Probe, ProbeFace, Search
from cases.permissions import SEARCH_CASE
from cases.presenters import (
    candidate_label,
    candidate_removal_text,
    candidate_score_meaning,
    derivation_view,
    face_origin_text,
    face_warnings,
    faces_in_order,
    outcome_error,
    probe_stage,
)
from cases.timeline import case_audit_events
from rfr.limits import text_limit


def _django_request(request: Request) -> HttpRequest:
    return request._request


# --- Cases --------------------------------------------------------------------------------------------------


class CaseSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)

    class Meta:
        model = Case
        fields = [
            "id",
            "reference",
            "title",
            "purpose",
            "offence_category",
            "legal_basis",
            "status",
            "owner",
            "team",
            "created_at",
            "closed_at",
        ]
        read_only_fields = fields


class CaseCreateSerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=64)
    title = serializers.CharField(max_length=200)
    purpose = serializers.ChoiceField(choices=Case.Purpose.choices)
    offence_category = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    legal_basis = serializers.CharField(max_length=text_limit("legal_basis"))
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "created_at",
            "actor_username",
            "action",
            "target_type",
            "target_id",
            "case_id",
            "detail",
            "row_hash",
        ]
        read_only_fields = fields


class StandardPagination(PageNumberPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


class CaseListCreateAPI(ListAPIView):
    serializer_class = CaseSerializer
    pagination_class = StandardPagination

    def get_queryset(self) -> Any:
        return cases_visible_to(user=self.request.user).order_by("-created_at", "-id")

    @extend_schema(request=CaseCreateSerializer, responses={201: CaseSerializer})
    def post(self, request: Request) -> Response:
        incoming = CaseCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        case = case_create(owner=request.user, request=_django_request(request), **incoming.validated_data)  # type: ignore[arg-type]
        return Response(CaseSerializer(case).data, status=201)


class CaseDetailAPI(APIView):
    @extend_schema(responses=CaseSerializer)
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        return Response(CaseSerializer(case).data)


class CaseAccessSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    reason = serializers.ChoiceField(choices=["owner", "member", "team_supervisor", "group"])
    text = serializers.CharField()
    can_search = serializers.BooleanField()
    granted_by = serializers.CharField(allow_blank=True)
    granted_at = serializers.DateTimeField(allow_null=True)
    audit_seq = serializers.IntegerField(allow_null=True)


class CaseAccessAPI(APIView):
    """Who can see the case, and why (cases.access.case_access_explain)."""

    @extend_schema(responses=CaseAccessSerializer(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        return Response(CaseAccessSerializer(case_access_explain(case=case), many=True).data)


class CaseAuditAPI(ListAPIView):
    serializer_class = AuditEventSerializer
    pagination_class = StandardPagination

    def get_queryset(self) -> Any:
        case = case_get_for_user(user=self.request.user, case_id=self.kwargs["case_id"])
        return case_audit_events(case=case)

    def paginate_queryset(self, queryset: Any) -> list[Any] | None:
        # As on the timeline page and /audit/: a first assessment awaiting its second review is shown to its
        # author only.
        page = super().paginate_queryset(queryset)
        events = list(queryset) if page is None else page
        return audit_events_for_reader(events=events, viewer=self.request.user)


# --- Probes and faces ---------------------------------------------------------------------------------------


class FaceSerializer(serializers.ModelSerializer):
    warnings = serializers.SerializerMethodField()
    warning_text = serializers.SerializerMethodField()
    uncertain = serializers.BooleanField(
        read_only=True, help_text="Tiny and low-scored: probably not a face. Listed after the other faces."
    )
    crop_url = serializers.SerializerMethodField()
    manually_marked = serializers.BooleanField(read_only=True)
    marked_by = serializers.SerializerMethodField()
    origin_text = serializers.SerializerMethodField()

    class Meta:
        model = ProbeFace
        fields = [
            "id",
            "index",
            "origin",
            "box",
            "landmarks",
            "detector_score",
            "quality",
            "warnings",
            "warning_text",
            "uncertain",
            "pack_key",
            "drawn_box",
            "crop_url",
            "manually_marked",
            "marked_by",
            "origin_text",
        ]

    def get_warnings(self, face: ProbeFace) -> list[str]:
        return face.warnings

    def get_marked_by(self, face: ProbeFace) -> str | None:
        """Who placed the landmarks of a manually marked face (null for any other face)."""
        return face.drawn_by.get_username() if face.manually_marked and face.drawn_by else None

    def get_origin_text(self, face: ProbeFace) -> str:
        return face_origin_text(face)

    def get_warning_text(self, face: ProbeFace) -> list[str]:
        return [text for _, text in face_warnings(face)]

    def get_crop_url(self, face: ProbeFace) -> str:
        """The aligned crop's API address, which a token client may fetch too (cases/api_images.py)."""
        return reverse("api-face-crop", args=[face.pk])


class DuplicateProbeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    original_name = serializers.CharField()
    uploaded_at = serializers.DateTimeField()
    url = serializers.CharField(help_text="The earlier probe's page.")


class ProbeSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.get_username", read_only=True)
    faces = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    no_face_found = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    waiting_for_worker = serializers.SerializerMethodField()
    derivation_chain = serializers.SerializerMethodField()
    stage = serializers.SerializerMethodField(
        help_text="While processing: decoding, detecting, encoding or saving (null otherwise)."
    )
    duplicates = serializers.SerializerMethodField(
        help_text="Other probes of the case with the same sha256 (the same image uploaded again), earliest first."
    )

    class Meta:
        model = Probe
        fields = [
            "id",
            "case",
            "status",
            "progress",
            "stage",
            "waiting_for_worker",
            "error",
            "no_face_found",
            "source",
            "description",
            "captured_at",
            "lawfully_held",
            "uploaded_by",
            "uploaded_at",
            "original_name",
            "sha256",
            "size_bytes",
            "width",
            "height",
            "pack_key",
            "image_url",
            "parent",
            "derivation",
            "derivation_chain",
            "video",
            "video_source",
            "faces",
            "duplicates",
        ]

    @extend_schema_field(FaceSerializer(many=True))
    def get_faces(self, probe: Probe) -> Any:
        """By number, uncertain detections after the others (cases.presenters.faces_in_order)."""
        return FaceSerializer(faces_in_order(probe.faces.all()), many=True, context=self.context).data

    def get_error(self, probe: Probe) -> dict[str, str] | None:
        return outcome_error(probe.error_code, probe.error_message)

    def get_waiting_for_worker(self, probe: Probe) -> bool:
        """Pending or processing with no sign of a worker for a while; housekeeping will send it again."""
        return work_waiting_for_worker(probe)

    def get_stage(self, probe: Probe) -> str | None:
        stage = probe_stage(probe)
        return stage[0] if stage else None

    def get_no_face_found(self, probe: Probe) -> bool:
        return probe.status == Probe.Status.DONE and probe.error_code == "no_face" and not probe.faces.exists()

    def get_image_url(self, probe: Probe) -> str:
        """The original's API address, which a token client may fetch too (cases/api_images.py)."""
        return reverse("api-probe-image", args=[probe.pk])

    @extend_schema_field(DuplicateProbeSerializer(many=True))
    def get_duplicates(self, probe: Probe) -> Any:
        return DuplicateProbeSerializer(probe_duplicates_view(probe=probe), many=True).data

    def get_derivation_chain(self, probe: Probe) -> list[dict[str, Any]] | None:
        """For an enhanced probe: each derivation from the uploaded original, operations in words."""
        return derivation_view(probe)


class EnhancementSerializer(serializers.Serializer):
    operations = serializers.JSONField(
        help_text='The chain, in order: [{"op": "gamma", "params": {"gamma": 1.5}}, ...]. Operations: crop, rotate,'
        " deinterlace, resize, gamma, clahe, denoise, unsharp, deconvolve; parameters left out take their default"
        " and are recorded."
    )


class ProbeUploadSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="JPEG, PNG, WebP, BMP or TIFF; the original is stored unchanged.")
    source = serializers.ChoiceField(choices=Probe.Source.choices)  # type: ignore[assignment]
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=text_limit("probe_description")
    )
    captured_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    lawfully_held = serializers.BooleanField(
        help_text="Must be true: the uploader states that the image is lawfully held."
    )


class DrawnBoxSerializer(serializers.Serializer):
    box = serializers.ListField(
        child=serializers.FloatField(),
        min_length=4,
        max_length=4,
        help_text="[x, y, width, height] in pixels.",
    )


class MarkedLandmarksSerializer(serializers.Serializer):
    points = serializers.ListField(
        # Numbers are checked by the service, which says which point is wrong and why.
        child=serializers.ListField(),
        help_text=(
            "Five [x, y] points in original-image pixels, in this order: the eye on the image's left, the eye"
            " on the image's right, the nose tip, the mouth corner on the image's left, the one on its right."
        ),
    )
    drawn_box = serializers.ListField(
        child=serializers.FloatField(),
        min_length=4,
        max_length=4,
        required=False,
        allow_null=True,
        default=None,
        help_text="[x, y, width, height] of the box drawn around the face, if any (recorded with the face).",
    )


class CaseProbesAPI(APIView):
    parser_classes = [MultiPartParser, FormParser]
    queues_work = True  # answers 503 queue_unavailable when the broker is down (rfr.api_schema)

    @extend_schema(responses={200: ProbeSerializer(many=True)})
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        return Response(ProbeSerializer(probes.probes_of_case(case=case), many=True).data)

    @extend_schema(
        request={"multipart/form-data": ProbeUploadSerializer},
        responses={201: ProbeSerializer},
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id, perm=SEARCH_CASE)
        serializer = ProbeUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["image"]
        probe = probes.probe_upload(
            case=case,
            uploaded_by=request.user,  # type: ignore[arg-type]
            data=upload.read(),
            filename=upload.name or "",
            source=data["source"],
            description=data["description"],
            captured_at=data["captured_at"],
            lawfully_held=data["lawfully_held"],
            request=_django_request(request),
        )
        probe.refresh_from_db()  # in eager mode processing has already run
        return Response(ProbeSerializer(probe).data, status=status.HTTP_201_CREATED)


class ProbeAPI(APIView):
    @extend_schema(responses={200: ProbeSerializer})
    def get(self, request: Request, probe_id: int) -> Response:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id)
        return Response(ProbeSerializer(probe).data)


class ProbeFacesAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=DrawnBoxSerializer,
        responses={201: FaceSerializer},
        description="Look for a face inside a box drawn where the detector missed one.",
    )
    def post(self, request: Request, probe_id: int) -> Response:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
        serializer = DrawnBoxSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        face = probes.probe_face_from_region(
            probe=probe,
            box=serializer.validated_data["box"],
            drawn_by=request.user,  # type: ignore[arg-type]
            request=_django_request(request),
        )
        return Response(FaceSerializer(face).data, status=status.HTTP_201_CREATED)


class ProbeLandmarksAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=MarkedLandmarksSerializer,
        responses={201: FaceSerializer},
        description=(
            "Make a face from five landmarks placed by hand where the detector found none (not even inside a"
            " drawn box): rfr aligns and embeds from the points. The face is marked `manually_marked`, carries"
            " the `manual_landmarks` quality warning, and is audited (`probe.face_marked`)."
        ),
    )
    def post(self, request: Request, probe_id: int) -> Response:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
        serializer = MarkedLandmarksSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        face = probes.probe_face_mark_landmarks(
            probe=probe,
            user=request.user,  # type: ignore[arg-type]
            points=serializer.validated_data["points"],
            drawn_box=serializer.validated_data["drawn_box"],
            request=_django_request(request),
        )
        return Response(FaceSerializer(face).data, status=status.HTTP_201_CREATED)


class ProbeDerivedAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    queues_work = True  # answers 503 queue_unavailable when the broker is down (rfr.api_schema)

    @extend_schema(
        request=EnhancementSerializer,
        responses={201: ProbeSerializer},
        description="Make an enhanced image from the probe with a fixed chain of operations, stored as a new"
        " probe with the chain on the record, and process it. The probe itself is never changed.",
    )
    def post(self, request: Request, probe_id: int) -> Response:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
        serializer = EnhancementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        derived = enhancement.enhancement_save(
            probe=probe,
            operations=serializer.validated_data["operations"],
            made_by=request.user,  # type: ignore[arg-type]
            request=_django_request(request),
        )
        derived.refresh_from_db()  # in eager mode processing has already run
        return Response(ProbeSerializer(derived).data, status=status.HTTP_201_CREATED)


class ProbeEnhancementPreviewAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=EnhancementSerializer,
        responses={(200, "image/png"): bytes},
        description="The chain applied to the probe, as PNG. Nothing is stored; the preview is audited.",
    )
    def post(self, request: Request, probe_id: int) -> HttpResponse:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id, perm=SEARCH_CASE)
        serializer = EnhancementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        png = enhancement.enhancement_preview(
            probe=probe,
            operations=serializer.validated_data["operations"],
            viewer=request.user,  # type: ignore[arg-type]
            request=_django_request(request),
        )
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "private, no-store"
        return response


# --- Searches, candidates and decisions --------------------------------------------------------------------


class SearchCreateSerializer(serializers.Serializer):
    schema_required_fields = ("justification",)  # refused by search_request when missing or blank
    galleries = serializers.ListField(child=serializers.IntegerField(), allow_empty=True)
    top_k = serializers.IntegerField(required=False, allow_null=True, default=None)
    threshold = serializers.FloatField(required=False, allow_null=True, default=None)
    justification = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=text_limit("justification"),
        help_text="Why this search is necessary and proportionate; recorded and disclosed.",
    )
    small_face_reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=text_limit("small_face_reason")
    )


FEATURES_HELP = (
    "The morphological feature checklist beside the rationale: {feature: assessment}, features "
    + ", ".join(FEATURE_ORDER)
    + "; assessments "
    + ", ".join(FeatureAssessment.values)
    + ". Features left out were not assessed."
)


class DecisionSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "candidate", "reviewer", "stage", "decision", "rationale", "features", "created_at"]
        extra_kwargs = {"features": {"help_text": FEATURES_HELP}}


class DecisionCreateSerializer(serializers.Serializer):
    schema_required_fields = ("rationale",)  # refused by candidate_decision_record when missing or blank
    decision = serializers.CharField(help_text="possible_match, not_a_match or inconclusive")
    rationale = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=text_limit("rationale"),
        help_text="The reasons for the decision; recorded.",
    )
    features = serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True),
        required=False,
        default=dict,
        help_text=FEATURES_HELP,
    )


class CandidateRemovalSerializer(serializers.Serializer):
    removed_at = serializers.DateTimeField()
    cause = serializers.ChoiceField(choices=Candidate.Removal.choices)
    text = serializers.CharField(help_text="The removal in words, as the pages and the report show it.")


class ScoreMeaningSerializer(serializers.Serializer):
    score = serializers.FloatField()
    estimated_false_match_rate = serializers.FloatField(allow_null=True)
    text = serializers.CharField()
    evaluation_run = serializers.IntegerField(allow_null=True)
    dataset = serializers.CharField(help_text="The evaluation's data set, research data marked as such.")


class CandidateSerializer(serializers.ModelSerializer):
    gallery = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    released = serializers.BooleanField(read_only=True)
    decisions = serializers.SerializerMethodField(
        help_text="The decisions the requesting user may read: while a possible match awaits its second review,"
        " only the first assessment's author sees it (the second review is independent)."
    )
    decisions_withheld = serializers.SerializerMethodField(
        help_text="How many decisions are withheld from the requesting user until the second review."
    )
    subject_ref = serializers.SerializerMethodField(
        help_text="The gallery subject's reference; null once the subject's gallery entry has been removed."
    )
    subject_removed = serializers.BooleanField(
        read_only=True, help_text="The gallery entry was removed (deletion on request or retention)."
    )
    subject_removal = serializers.SerializerMethodField(
        help_text="When and why the gallery entry was removed (null while it is held); no decision can be"
        " recorded on a removed candidate."
    )
    score_meaning = serializers.SerializerMethodField(
        help_text="What the score means: the estimated share of different-person pairs that scored this high in"
        " the stored evaluation the search relied on (`estimated_false_match_rate`, null without one), in words"
        " (`text`). Never a probability that the candidate is the person searched for."
    )

    class Meta:
        model = Candidate
        fields = [
            "id",
            "rank",
            "score",
            "score_meaning",
            "subject_ref",
            "subject_removed",
            "subject_removal",
            "gallery",
            "outcome",
            "released",
            "label",
            "decisions",
            "decisions_withheld",
        ]

    @extend_schema_field(ScoreMeaningSerializer)
    def get_score_meaning(self, candidate: Candidate) -> dict[str, Any]:
        return candidate_score_meaning(candidate).as_dict()

    def _visible(self, candidate: Candidate) -> tuple[list[Decision], int]:
        # No viewer in the context means nobody in particular: pending first assessments stay withheld.
        return review.decisions_visible_to(candidate=candidate, viewer=self.context.get("viewer"))

    @extend_schema_field(DecisionSerializer(many=True))
    def get_decisions(self, candidate: Candidate) -> list[dict[str, Any]]:
        return DecisionSerializer(self._visible(candidate)[0], many=True).data  # type: ignore[return-value]

    def get_decisions_withheld(self, candidate: Candidate) -> int:
        return self._visible(candidate)[1]

    def get_gallery(self, candidate: Candidate) -> dict[str, Any]:
        return {"id": candidate.gallery_id, "name": candidate.gallery_name}

    def get_subject_ref(self, candidate: Candidate) -> str | None:
        return None if candidate.subject_removed else candidate.subject_ref

    @extend_schema_field(CandidateRemovalSerializer(allow_null=True))
    def get_subject_removal(self, candidate: Candidate) -> dict[str, Any] | None:
        if not candidate.subject_removed:
            return None
        return CandidateRemovalSerializer(
            {
                "removed_at": candidate.subject_removed_at,
                "cause": candidate.subject_removal,
                "text": candidate_removal_text(candidate),
            }
        ).data

    def get_label(self, candidate: Candidate) -> str:
        return candidate_label(candidate)


class SearchSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)
    probe = serializers.IntegerField(source="face.probe_id", read_only=True)
    error = serializers.SerializerMethodField()
    wording = serializers.SerializerMethodField()
    waiting_for_worker = serializers.SerializerMethodField()
    face_manually_marked = serializers.BooleanField(source="face.manually_marked", read_only=True)
    face_origin_text = serializers.SerializerMethodField()

    probe_derivation = serializers.SerializerMethodField()

    class Meta:
        model = Search
        fields = [
            "id",
            "case",
            "probe",
            "face",
            "face_manually_marked",
            "face_origin_text",
            "status",
            "progress",
            "waiting_for_worker",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "galleries",
            "top_k",
            "threshold",
            "threshold_source",
            "justification",
            "small_face_reason",
            "pack_key",
            "evaluation_run",
            "score_normalisation",
            "wording",
            "probe_derivation",
        ]

    def get_error(self, search: Search) -> dict[str, str] | None:
        return outcome_error(search.error_code, search.error_message)

    def get_waiting_for_worker(self, search: Search) -> bool:
        """Pending or processing with no sign of a worker for a while; housekeeping will send it again."""
        return work_waiting_for_worker(search)

    def get_wording(self, search: Search) -> str:
        return POSSIBLE_MATCH_WORDING

    def get_face_origin_text(self, search: Search) -> str:
        return face_origin_text(search.face)

    def get_probe_derivation(self, search: Search) -> list[dict[str, Any]] | None:
        """When the searched probe is an enhanced image: how it was made (see the probe's derivation_chain)."""
        return derivation_view(search.face.probe)


class SearchWithCandidatesSerializer(SearchSerializer):
    candidates = serializers.SerializerMethodField()

    class Meta(SearchSerializer.Meta):
        fields = [*SearchSerializer.Meta.fields, "candidates"]

    def get_candidates(self, search: Search) -> list[dict[str, Any]]:
        if search.status != Search.Status.DONE:
            return []
        return CandidateSerializer(  # type: ignore[return-value]
            searches.candidates_of_search(search=search), many=True, context=self.context
        ).data


class FaceSearchesAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    queues_work = True  # answers 503 queue_unavailable when the broker is down (rfr.api_schema)

    @extend_schema(
        request=SearchCreateSerializer,
        responses={201: SearchSerializer},
    )
    def post(self, request: Request, face_id: int) -> Response:
        face = face_get_for_user(user=request.user, face_id=face_id, perm=SEARCH_CASE)
        return search_create_response(face_of=lambda: face, request=request)


def search_create_response(*, face_of: Callable[[], ProbeFace], request: Request) -> Response:
    """A search from a request's SearchCreateSerializer body: the one way the API starts a search, for a
    probe's face and for a track's fused face (cases.video_api) alike. `face_of` is called only once the body
    is valid, so a refused request makes nothing (a track's search face is a new still probe)."""
    serializer = SearchCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    search = searches.search_request(
        face=face_of(),
        requested_by=request.user,  # type: ignore[arg-type]
        gallery_ids=data["galleries"],
        top_k=data["top_k"],
        threshold=data["threshold"],
        justification=data["justification"],
        small_face_reason=data["small_face_reason"],
        request=_django_request(request),
    )
    search.refresh_from_db()
    return Response(SearchSerializer(search).data, status=status.HTTP_201_CREATED)


class SearchAPI(APIView):
    @extend_schema(
        responses={200: SearchWithCandidatesSerializer},
        description="The search with its ranked candidates once done. Each view of the list is audited.",
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = search_get_for_user(user=request.user, search_id=search_id)
        if search.status == Search.Status.DONE:
            searches.search_candidates_view_record(
                search=search,
                viewer=request.user,  # type: ignore[arg-type]
                request=_django_request(request),
                via="api",
            )
        return Response(SearchWithCandidatesSerializer(search, context={"viewer": request.user}).data)


class SearchStatusAPI(APIView):
    @extend_schema(
        responses={200: SearchSerializer},
        description="Progress only, without candidates (not a view of the candidate list), for polling.",
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = search_get_for_user(user=request.user, search_id=search_id)
        return Response(SearchSerializer(search).data)


class CandidateDecisionsAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=DecisionCreateSerializer,
        responses={
            201: CandidateSerializer,
        },
    )
    def post(self, request: Request, candidate_id: int) -> Response:
        candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
        serializer = DecisionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review.candidate_decision_record(
            candidate=candidate,
            reviewer=request.user,  # type: ignore[arg-type]
            decision=serializer.validated_data["decision"],
            rationale=serializer.validated_data["rationale"],
            features=serializer.validated_data["features"],
            request=_django_request(request),
        )
        candidate = Candidate.objects.prefetch_related("decisions__reviewer").get(pk=candidate.pk)
        return Response(
            CandidateSerializer(candidate, context={"viewer": request.user}).data, status=status.HTTP_201_CREATED
        )
