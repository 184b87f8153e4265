"""Case API: GET/POST /api/cases/, GET /api/cases/<id>/, GET /api/cases/<id>/audit/.

Errors are JSON (DRF): 404 {"detail": ...} for a case the caller may not view, 400 with field errors for bad
input, 403 when not signed in.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from cases.models import Case, Team
from cases.selectors import case_audit_events, case_get_for_user, cases_visible_to
from cases.services import case_create


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
    legal_basis = serializers.CharField()
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
        try:
            case = case_create(owner=request.user, request=request, **incoming.validated_data)  # type: ignore[arg-type]
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
        return Response(CaseSerializer(case).data, status=201)


class CaseDetailAPI(APIView):
    @extend_schema(responses=CaseSerializer)
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        return Response(CaseSerializer(case).data)


class CaseAuditAPI(ListAPIView):
    serializer_class = AuditEventSerializer
    pagination_class = StandardPagination

    def get_queryset(self) -> Any:
        case = case_get_for_user(user=self.request.user, case_id=self.kwargs["case_id"])
        return case_audit_events(case=case)
