"""The API's reads for review: a case's searches (paged, newest first) and one candidate with its decisions.

Objects are fetched through cases.access (404 for anyone not on the case). One candidate is read as the
candidate page reads it: its decisions as cases.review.decisions_visible_to lets the requesting user see them
(a first assessment awaiting its independent second review is shown to its author only), and each read is
audited as a view (candidate.viewed), like opening the page. Listing a case's searches shows no candidate and is
not a view of any candidate list; GET /api/searches/{id}/ is.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases import review, searches
from cases.access import candidate_get_for_user, case_get_for_user
from cases.api import CandidateSerializer, SearchSerializer, StandardPagination
from cases.models import POSSIBLE_MATCH_WORDING, Candidate


@extend_schema_view(
    get=extend_schema(
        description="The case's searches, newest first, with their settings and status but no candidates (read"
        " those with GET /api/searches/{id}/, which is audited as a view of the list)."
    )
)
class CaseSearchesAPI(ListAPIView):
    serializer_class = SearchSerializer
    pagination_class = StandardPagination

    def get_queryset(self) -> Any:
        case = case_get_for_user(user=self.request.user, case_id=self.kwargs["case_id"])
        return searches.searches_of_case(case=case).order_by("-created_at", "-id")


class CandidateImagesSerializer(serializers.Serializer):
    probe_image = serializers.CharField(help_text="The searched probe's original (GET, token or session).")
    probe_face_crop = serializers.CharField(help_text="The searched face's aligned crop (PNG).")
    gallery_image = serializers.CharField(help_text="The candidate's gallery image; 404 once removed.")
    gallery_face_crop = serializers.CharField(help_text="The candidate's face aligned as the probe face (PNG).")


class CandidateDetailSerializer(CandidateSerializer):
    search = serializers.IntegerField(source="search_id", read_only=True)
    case = serializers.IntegerField(source="search.case_id", read_only=True)
    face = serializers.IntegerField(source="search.face_id", read_only=True)
    probe = serializers.IntegerField(source="search.face.probe_id", read_only=True)
    awaiting_second_review = serializers.SerializerMethodField(
        help_text="One assessment is recorded and a second, different person's is awaited."
    )
    can_decide = serializers.SerializerMethodField(
        help_text="Whether the requesting user may record a decision now (POST .../decisions/): they have not"
        " decided on it, and it is undecided or awaits its second review. The service has the last word: only a"
        " second reviewer may confirm a possible match, and a closed case takes no decision."
    )
    images = serializers.SerializerMethodField()
    wording = serializers.SerializerMethodField()

    class Meta(CandidateSerializer.Meta):
        fields = [
            *CandidateSerializer.Meta.fields,
            "search",
            "case",
            "face",
            "probe",
            "awaiting_second_review",
            "can_decide",
            "images",
            "wording",
        ]

    def get_awaiting_second_review(self, candidate: Candidate) -> bool:
        return review.candidate_awaits_second_review(candidate=candidate)

    def get_can_decide(self, candidate: Candidate) -> bool:
        viewer_id = getattr(self.context.get("viewer"), "pk", None)
        decisions = list(candidate.decisions.all())
        if any(decision.reviewer_id == viewer_id for decision in decisions):
            return False
        return not decisions or review.candidate_awaits_second_review(candidate=candidate)

    @extend_schema_field(CandidateImagesSerializer)
    def get_images(self, candidate: Candidate) -> dict[str, str]:
        return {
            "probe_image": reverse("api-probe-image", args=[candidate.search.face.probe_id]),
            "probe_face_crop": reverse("api-face-crop", args=[candidate.search.face_id]),
            "gallery_image": reverse("api-candidate-image", args=[candidate.pk]),
            "gallery_face_crop": reverse("api-candidate-crop", args=[candidate.pk]),
        }

    def get_wording(self, candidate: Candidate) -> str:
        return POSSIBLE_MATCH_WORDING


class CandidateAPI(APIView):
    @extend_schema(
        responses={200: CandidateDetailSerializer},
        description="One candidate, with its decisions as the requesting user may read them and the addresses of"
        " both faces' images. Each read is audited as a view of the candidate (candidate.viewed).",
    )
    def get(self, request: Request, candidate_id: int) -> Response:
        candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
        review.candidate_view_record(candidate=candidate, viewer=request.user, request=request._request, via="api")  # type: ignore[arg-type]
        # Read again as the list reads it: with the evaluation behind the score's meaning, and the decisions.
        candidate = searches.candidates_of_search(search=candidate.search).get(pk=candidate.pk)
        return Response(CandidateDetailSerializer(candidate, context={"viewer": request.user}).data)
