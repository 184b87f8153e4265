"""The case images for API clients: the twins under /api/ of the pages' image addresses, with token or session
authentication (a token client sent to the sign-in page could never see a face).

Each view fetches its object through cases.access (404 for anyone not on the case, exactly as the pages) and
answers with the builders of cases.images that the pages use: the same 404 when an image is no longer held, the
same audit event (probe.image_viewed, candidate.image_viewed) written before a byte is sent, and
`Cache-Control: private, no-store`. A refusal is the API's one JSON error shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from cases import images
from cases.access import candidate_get_for_user, face_get_for_user, probe_get_for_user


class ImageContentNegotiation(BaseContentNegotiation):
    """The body is an image whatever the client accepts (`Accept: image/*` must not become 406); the first
    renderer, JSON, writes any error."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ImageAPIView(APIView):
    content_negotiation_class = ImageContentNegotiation


def _viewer(request: Request) -> AbstractBaseUser:
    """The signed-in user (the default permission, IsAuthenticated, has turned anyone else away)."""
    return cast(AbstractBaseUser, request.user)


_AUDITED = " Each request is audited before the image is sent; `Cache-Control: private, no-store`."


def _image_schema(media_type: str, description: str) -> Any:
    return extend_schema(responses={(200, media_type): OpenApiTypes.BINARY}, description=description + _AUDITED)


class ProbeImageAPI(ImageAPIView):
    @_image_schema("image/*", "The probe's original bytes, unchanged (its own JPEG, PNG, WebP, BMP or TIFF type).")
    def get(self, request: Request, probe_id: int) -> HttpResponseBase:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id)
        return images.probe_original_response(probe=probe, viewer=_viewer(request), request=request._request, via="api")


class ProbeDisplayImageAPI(ImageAPIView):
    @_image_schema(
        "image/*",
        "A copy of the probe, upright, its longer side at most 1600 px (JPEG for a JPEG original, else PNG);"
        " made from the original on request, never stored.",
    )
    def get(self, request: Request, probe_id: int) -> HttpResponseBase:
        probe = probe_get_for_user(user=request.user, probe_id=probe_id)
        return images.probe_display_response(probe=probe, viewer=_viewer(request), request=request._request, via="api")


class FaceCropAPI(ImageAPIView):
    @_image_schema("image/png", "The probe face aligned to the 112×112 template the search compared.")
    def get(self, request: Request, face_id: int) -> HttpResponseBase:
        face = face_get_for_user(user=request.user, face_id=face_id)
        return images.face_crop_response(face=face, viewer=_viewer(request), request=request._request, via="api")


class CandidateImageAPI(ImageAPIView):
    @_image_schema("image/*", "The gallery image the candidate came from; 404 once its gallery entry has been removed.")
    def get(self, request: Request, candidate_id: int) -> HttpResponseBase:
        candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
        return images.candidate_image_response(
            candidate=candidate, viewer=_viewer(request), request=request._request, via="api"
        )


class CandidateCropAPI(ImageAPIView):
    @_image_schema(
        "image/png",
        "The candidate's face aligned as the probe face was (112×112), for side-by-side comparison; 404 once its"
        " gallery entry has been removed.",
    )
    def get(self, request: Request, candidate_id: int) -> HttpResponseBase:
        candidate = candidate_get_for_user(user=request.user, candidate_id=candidate_id)
        return images.candidate_crop_response(
            candidate=candidate, viewer=_viewer(request), request=request._request, via="api"
        )
