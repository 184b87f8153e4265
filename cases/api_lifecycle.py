"""Closing and reopening a case through the API (cases.lifecycle.case_close, case_reopen).

The case is fetched through cases.access (404 for anyone not on it); the services decide who may do it (the
owner or a supervisor of the case's team closes, only such a supervisor reopens: 403 for other viewers), refuse
a case already in that state (409), and write case.closed or case.reopened with the reason in the transaction of
the change.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.access import case_get_for_user
from cases.api import CaseSerializer
from cases.lifecycle import case_close, case_reopen
from rfr.limits import text_limit


class CaseCloseSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=text_limit("case_close_reason"),
        help_text="Why the case is closed; recorded in the audit trail.",
    )


class CaseReopenSerializer(serializers.Serializer):
    schema_required_fields = ("reason",)  # refused by case_reopen (reason_required) when missing or blank
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=text_limit("case_reopen_reason"),
        help_text="Why the case is reopened; required, recorded in the audit trail.",
    )


class CaseCloseAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=CaseCloseSerializer,
        responses={200: CaseSerializer},
        description="Close the case (its owner, or a supervisor of its team). A closed case takes no new uploads,"
        " searches or decisions until a supervisor reopens it. Audited (case.closed) with the reason.",
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        incoming = CaseCloseSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        closed = case_close(
            case=case,
            closed_by=request.user,  # type: ignore[arg-type]
            reason=incoming.validated_data["reason"],
            request=request._request,
        )
        return Response(CaseSerializer(closed).data)


class CaseReopenAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=CaseReopenSerializer,
        responses={200: CaseSerializer},
        description="Reopen a closed case (a supervisor of its team only), with a reason. Audited (case.reopened).",
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get_for_user(user=request.user, case_id=case_id)
        incoming = CaseReopenSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        reopened = case_reopen(
            case=case,
            reopened_by=request.user,  # type: ignore[arg-type]
            reason=incoming.validated_data["reason"],
            request=request._request,
        )
        return Response(CaseSerializer(reopened).data)
