"""REST API of the case workbench: probes, faces, searches, candidates and decisions.

Thin views: each fetches its object through the case (404 for outsiders), hands writes to
cases.workbench_services, and reports every refusal as `{"error": code, "message": "..."}`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import workbench_selectors as selectors
from cases import workbench_services as services
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Decision, Probe, ProbeFace, Search
from cases.workbench_services import WorkbenchError
from faceengine.quality import WARNING_TEXT

# --- Presentation helpers shared with the pages -------------------------------------------------------------


def candidate_label(candidate: Candidate) -> str:
    """The words shown for a candidate; a possible match always carries the intelligence-only wording."""
    outcome = candidate.outcome
    if outcome == Candidate.Outcome.POSSIBLE_MATCH:
        return f"{POSSIBLE_MATCH_WORDING} (awaiting an independent second review; not released)"
    if outcome == Candidate.Outcome.RELEASED:
        return f"{POSSIBLE_MATCH_WORDING} (agreed by a second reviewer; released to the case)"
    if outcome == Candidate.Outcome.DISPUTED:
        return "Not released: the second reviewer did not agree that this is a possible match"
    return str(candidate.get_outcome_display())


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            out += _flatten(value, f"{key}: " if key != "non_field_errors" else "")
        return out
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


# --- Serializers -------------------------------------------------------------------------------------------


class FaceSerializer(serializers.ModelSerializer):
    warnings = serializers.SerializerMethodField()
    warning_text = serializers.SerializerMethodField()
    crop_url = serializers.SerializerMethodField()

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
            "pack_key",
            "drawn_box",
            "crop_url",
        ]

    def get_warnings(self, face: ProbeFace) -> list[str]:
        return face.warnings

    def get_warning_text(self, face: ProbeFace) -> list[str]:
        return [WARNING_TEXT.get(w, w) for w in face.warnings]

    def get_crop_url(self, face: ProbeFace) -> str:
        return reverse("workbench:face-crop", args=[face.pk])


class ProbeSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.get_username", read_only=True)
    faces = FaceSerializer(many=True, read_only=True)
    error = serializers.SerializerMethodField()
    no_face_found = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Probe
        fields = [
            "id",
            "case",
            "status",
            "progress",
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
            "faces",
        ]

    def get_error(self, probe: Probe) -> dict[str, str] | None:
        if probe.error_code:
            return {"code": probe.error_code, "message": probe.error_message}
        return None

    def get_no_face_found(self, probe: Probe) -> bool:
        return probe.status == Probe.Status.DONE and probe.error_code == "no_face" and not probe.faces.exists()

    def get_image_url(self, probe: Probe) -> str:
        return reverse("workbench:probe-image", args=[probe.pk])


class ProbeUploadSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="JPEG, PNG, WebP, BMP or TIFF; the original is stored unchanged.")
    source = serializers.ChoiceField(choices=Probe.Source.choices)  # type: ignore[assignment]
    description = serializers.CharField(required=False, allow_blank=True, default="")
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


class SearchCreateSerializer(serializers.Serializer):
    galleries = serializers.ListField(child=serializers.IntegerField(), allow_empty=True)
    top_k = serializers.IntegerField(required=False, allow_null=True, default=None)
    threshold = serializers.FloatField(required=False, allow_null=True, default=None)
    justification = serializers.CharField(required=False, allow_blank=True, default="")
    small_face_reason = serializers.CharField(required=False, allow_blank=True, default="")


class DecisionSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "candidate", "reviewer", "stage", "decision", "rationale", "created_at"]


class DecisionCreateSerializer(serializers.Serializer):
    decision = serializers.CharField(help_text="possible_match, not_a_match or inconclusive")
    rationale = serializers.CharField(required=False, allow_blank=True, default="")


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

    class Meta:
        model = Candidate
        fields = [
            "id",
            "rank",
            "score",
            "subject_ref",
            "gallery",
            "outcome",
            "released",
            "label",
            "decisions",
            "decisions_withheld",
        ]

    def _visible(self, candidate: Candidate) -> tuple[list[Decision], int]:
        # No viewer in the context means nobody in particular: pending first assessments stay withheld.
        return selectors.decisions_visible_to(candidate=candidate, viewer=self.context.get("viewer"))

    @extend_schema_field(DecisionSerializer(many=True))
    def get_decisions(self, candidate: Candidate) -> list[dict[str, Any]]:
        return DecisionSerializer(self._visible(candidate)[0], many=True).data  # type: ignore[return-value]

    def get_decisions_withheld(self, candidate: Candidate) -> int:
        return self._visible(candidate)[1]

    def get_gallery(self, candidate: Candidate) -> dict[str, Any]:
        return {"id": candidate.gallery_id, "name": candidate.gallery_name}

    def get_label(self, candidate: Candidate) -> str:
        return candidate_label(candidate)


class SearchSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)
    probe = serializers.IntegerField(source="face.probe_id", read_only=True)
    error = serializers.SerializerMethodField()
    wording = serializers.SerializerMethodField()

    class Meta:
        model = Search
        fields = [
            "id",
            "case",
            "probe",
            "face",
            "status",
            "progress",
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
            "wording",
        ]

    def get_error(self, search: Search) -> dict[str, str] | None:
        return {"code": search.error_code, "message": search.error_message} if search.error_code else None

    def get_wording(self, search: Search) -> str:
        return POSSIBLE_MATCH_WORDING


class SearchWithCandidatesSerializer(SearchSerializer):
    candidates = serializers.SerializerMethodField()

    class Meta(SearchSerializer.Meta):
        fields = [*SearchSerializer.Meta.fields, "candidates"]

    def get_candidates(self, search: Search) -> list[dict[str, Any]]:
        if search.status != Search.Status.DONE:
            return []
        return CandidateSerializer(  # type: ignore[return-value]
            selectors.candidates_of_search(search=search), many=True, context=self.context
        ).data


ErrorSerializer = inline_serializer(
    name="WorkbenchError", fields={"error": serializers.CharField(), "message": serializers.CharField()}
)


# --- Views -------------------------------------------------------------------------------------------------


class WorkbenchAPIView(APIView):
    """Reports every refusal in one shape: {"error": code, "message": text a person can act on}."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, WorkbenchError):
            return Response(error_body(exc.code, exc.message), status=exc.status)
        response = super().handle_exception(exc)
        if isinstance(exc, ValidationError):
            fields = exc.detail
            response.data = error_body("invalid", " ".join(_flatten(fields)), fields=fields)
        elif isinstance(exc, APIException):
            detail = exc.detail
            code = getattr(detail, "code", None) or exc.default_code
            response.data = error_body(str(code), " ".join(_flatten(detail)))
        else:  # Http404 / PermissionDenied from Django, converted by DRF
            response.data = error_body(
                "not_found" if response.status_code == 404 else "forbidden",
                " ".join(_flatten(response.data)) if response.data else "Not found.",
            )
        return response


def _django_request(request: Request) -> HttpRequest:
    return request._request


class CaseProbesAPI(WorkbenchAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={200: ProbeSerializer(many=True)})
    def get(self, request: Request, case_id: int) -> Response:
        case = selectors._case_check(user=request.user, case_id=case_id, perm=selectors.VIEW)
        return Response(ProbeSerializer(selectors.probes_of_case(case=case), many=True).data)

    @extend_schema(
        request={"multipart/form-data": ProbeUploadSerializer},
        responses={201: ProbeSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = selectors._case_check(user=request.user, case_id=case_id, perm=selectors.SEARCH)
        serializer = ProbeUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["image"]
        probe = services.probe_upload(
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


class ProbeAPI(WorkbenchAPIView):
    @extend_schema(responses={200: ProbeSerializer, 404: ErrorSerializer})
    def get(self, request: Request, probe_id: int) -> Response:
        probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id)
        return Response(ProbeSerializer(probe).data)


class ProbeFacesAPI(WorkbenchAPIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=DrawnBoxSerializer,
        responses={201: FaceSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        description="Look for a face inside a box drawn where the detector missed one.",
    )
    def post(self, request: Request, probe_id: int) -> Response:
        probe = selectors.probe_get_for_user(user=request.user, probe_id=probe_id, perm=selectors.SEARCH)
        serializer = DrawnBoxSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        face = services.probe_face_from_region(
            probe=probe,
            box=serializer.validated_data["box"],
            drawn_by=request.user,  # type: ignore[arg-type]
            request=_django_request(request),
        )
        return Response(FaceSerializer(face).data, status=status.HTTP_201_CREATED)


class FaceSearchesAPI(WorkbenchAPIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=SearchCreateSerializer,
        responses={201: SearchSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, face_id: int) -> Response:
        face = selectors.face_get_for_user(user=request.user, face_id=face_id, perm=selectors.SEARCH)
        serializer = SearchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        search = services.search_request(
            face=face,
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


class SearchAPI(WorkbenchAPIView):
    @extend_schema(
        responses={200: SearchWithCandidatesSerializer, 404: ErrorSerializer},
        description="The search with its ranked candidates once done. Each view of the list is audited.",
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = selectors.search_get_for_user(user=request.user, search_id=search_id)
        if search.status == Search.Status.DONE:
            services.search_candidates_view_record(
                search=search,
                viewer=request.user,  # type: ignore[arg-type]
                request=_django_request(request),
                via="api",
            )
        return Response(SearchWithCandidatesSerializer(search, context={"viewer": request.user}).data)


class SearchStatusAPI(WorkbenchAPIView):
    @extend_schema(
        responses={200: SearchSerializer, 404: ErrorSerializer},
        description="Progress only, without candidates (not a view of the candidate list), for polling.",
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = selectors.search_get_for_user(user=request.user, search_id=search_id)
        return Response(SearchSerializer(search).data)


class CandidateDecisionsAPI(WorkbenchAPIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=DecisionCreateSerializer,
        responses={
            201: CandidateSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def post(self, request: Request, candidate_id: int) -> Response:
        candidate = selectors.candidate_get_for_user(user=request.user, candidate_id=candidate_id)
        serializer = DecisionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.candidate_decision_record(
            candidate=candidate,
            reviewer=request.user,  # type: ignore[arg-type]
            decision=serializer.validated_data["decision"],
            rationale=serializer.validated_data["rationale"],
            request=_django_request(request),
        )
        candidate = Candidate.objects.prefetch_related("decisions__reviewer").get(pk=candidate.pk)
        return Response(
            CandidateSerializer(candidate, context={"viewer": request.user}).data, status=status.HTTP_201_CREATED
        )
