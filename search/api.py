"""The gallery side's API: the galleries a signed-in user may choose to search (GET /api/galleries/).

A search names galleries by id (POST /api/faces/{id}/searches/); this list is where an API client finds them,
the same list the search page offers (search.galleries.galleries_searchable): any signed-in user may search any
gallery from a case they may search in, so the list is the same for everyone. It holds no biometric data and no
case content: names, kinds, provenance and how many subjects and images each holds.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination

from search.galleries import galleries_searchable
from search.models import Gallery


class GallerySerializer(serializers.ModelSerializer):
    subjects = serializers.IntegerField(
        source="subject_count", read_only=True, help_text="How many subjects the gallery holds."
    )
    images = serializers.IntegerField(
        source="image_count", read_only=True, help_text="How many enrolled images it holds."
    )
    default_threshold = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The gallery's own default score threshold, for the model pack in default_threshold_pack_key"
        " (null: the pack's system default applies).",
    )

    class Meta:
        model = Gallery
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "provenance",
            "retention_days",
            "subjects",
            "images",
            "default_threshold",
            "default_threshold_pack_key",
            "created_at",
        ]
        read_only_fields = fields


class GalleryPagination(PageNumberPagination):
    page_size = 100
    max_page_size = 500
    page_size_query_param = "page_size"


@extend_schema_view(
    get=extend_schema(
        description="The galleries you may search, by name, with their size. Give their ids as `galleries` when"
        " you request a search."
    )
)
class GalleryListAPI(ListAPIView):
    serializer_class = GallerySerializer
    pagination_class = GalleryPagination

    def get_queryset(self) -> Any:
        # Two independent counts: distinct, or the join of subjects and images would multiply them.
        return galleries_searchable().annotate(
            subject_count=Count("subjects", distinct=True), image_count=Count("images", distinct=True)
        )
