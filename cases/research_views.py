"""Keep searching: the search page's buttons and the small API endpoint (service: cases.research)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.access import case_user_may, search_get_for_user
from cases.models import Search, SearchWatch
from cases.permissions import SEARCH_CASE
from cases.research import search_keep_searching_start, search_keep_searching_stop, search_runs_history
from rfr.error_handling import error_return_to


@login_required
@require_POST
@error_return_to("cases:search", "search_id")
def search_keep_searching(request: HttpRequest, search_id: int) -> HttpResponse:
    """Start (`keep=1`) or stop (`keep=0`) re-running the search on new enrolments; owner and members."""
    search = search_get_for_user(user=request.user, search_id=search_id, perm=SEARCH_CASE)
    if request.POST.get("keep", "1") == "1":
        search_keep_searching_start(search=search, user=request.user, request=request)  # type: ignore[arg-type]
        messages.success(request, "This search will be run again on new enrolments of its galleries.")
    else:
        search_keep_searching_stop(search=search, user=request.user, request=request)  # type: ignore[arg-type]
        messages.success(request, "This search will no longer be run again.")
    return HttpResponseRedirect(reverse("cases:search", args=[search.pk]) + "#keep-searching")


def keep_searching_context(*, search: Search, user: Any) -> dict[str, Any]:
    """For the search page: its runs, whether it is kept searching, and whether `user` may change that."""
    watch = SearchWatch.objects.filter(search=search).first()
    return {
        "runs": search_runs_history(search=search),
        "watch": watch,
        "may_keep_searching": search.case.is_open
        and search.status == Search.Status.DONE
        and case_user_may(user=user, case=search.case, perm=SEARCH_CASE),
    }


class KeepSearchingInputSerializer(serializers.Serializer):
    keep = serializers.BooleanField(help_text="true: re-run on new enrolments; false: stop.")


class SearchRunSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    when = serializers.DateTimeField()
    what = serializers.CharField()
    compared = serializers.CharField()
    new_candidates = serializers.IntegerField()


class KeepSearchingSerializer(serializers.Serializer):
    search = serializers.IntegerField()
    keep_searching = serializers.BooleanField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField(allow_blank=True)
    runs = SearchRunSerializer(many=True)


def keep_searching_state(search: Search) -> dict[str, Any]:
    watch = SearchWatch.objects.filter(search=search).first()
    return {
        "search": search.pk,
        "keep_searching": bool(watch and watch.active),
        "stopped_at": watch.stopped_at if watch else None,
        "stop_reason": watch.stop_reason if watch else "",
        "runs": search_runs_history(search=search),
    }


class SearchKeepSearchingAPI(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        responses={200: KeepSearchingSerializer}, description="Whether the search is kept searching, and its runs."
    )
    def get(self, request: Request, search_id: int) -> Response:
        search = search_get_for_user(user=request.user, search_id=search_id)
        return Response(KeepSearchingSerializer(keep_searching_state(search)).data)

    @extend_schema(
        request=KeepSearchingInputSerializer,
        responses={200: KeepSearchingSerializer},
        description="Keep the search searching new enrolments of its galleries (or stop). Audited.",
    )
    def post(self, request: Request, search_id: int) -> Response:
        search = search_get_for_user(user=request.user, search_id=search_id, perm=SEARCH_CASE)
        incoming = KeepSearchingInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        django_request = request._request
        if incoming.validated_data["keep"]:
            search_keep_searching_start(search=search, user=request.user, request=django_request)  # type: ignore[arg-type]
        else:
            search_keep_searching_stop(search=search, user=request.user, request=django_request)  # type: ignore[arg-type]
        return Response(KeepSearchingSerializer(keep_searching_state(search)).data)
