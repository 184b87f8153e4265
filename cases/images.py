"""The images of a case as HTTP responses, shared by the pages (cases/views.py) and the API (cases/api_images.py):
a probe's original and its reduced display copy, a probe face's aligned crop, a candidate's gallery image and
its aligned crop.

Callers fetch the object through cases.access first (404 for anyone not on the case). Each builder answers 404
when the image is no longer held, and otherwise records the view with its audit event (probe.image_viewed or
candidate.image_viewed, with `via` "page" or "api") before a byte is sent: if the record cannot be written,
nothing is sent. Every image goes out `Cache-Control: private, no-store` with `nosniff`, so that no browser or
proxy keeps case images.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any, TypeVar

import cv2
import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from cases import probes, review
from cases.models import Candidate, Probe, ProbeFace

ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)

IMAGE_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}

# The media type of each format a probe may have (faceengine.imageio.ACCEPTED_FORMATS, as Pillow names them).
# MPO, how many cameras store a JPEG with its preview, is served as the JPEG it is: "image/mpo" is no type a
# browser or client knows, and with nosniff it would not be shown at all.
PROBE_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def image_file_response(field_file: Any, content_type: str | None = None) -> FileResponse:
    """A stored image file, streamed; 404 when the file is no longer held."""
    try:
        handle = field_file.open("rb")
    except FileNotFoundError:
        raise Http404("The image is no longer held.") from None
    content_type = content_type or mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


def image_bytes_response(content: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    for key, value in IMAGE_HEADERS.items():
        response[key] = value
    return response


def png_response(image_bgr: np.ndarray) -> HttpResponse:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover
        raise Http404("The image could not be rendered.")
    return image_bytes_response(buffer.tobytes(), "image/png")


def response_recorded(response: ResponseT, record: Callable[[], None]) -> ResponseT:
    """Record the view of an image once it is known to be there, before a byte is sent; if the record cannot
    be written, nothing is sent (and the open file is closed)."""
    try:
        record()
    except BaseException:
        response.close()
        raise
    return response


def probe_original_response(
    *, probe: Probe, viewer: AbstractBaseUser, request: HttpRequest, via: str = "page"
) -> FileResponse:
    """The probe's original bytes, unchanged, with the type its format names."""
    response = image_file_response(
        probe.original, PROBE_MEDIA_TYPES.get(probe.image_format, "application/octet-stream")
    )
    return response_recorded(
        response, lambda: probes.probe_image_view_record(probe=probe, viewer=viewer, request=request, via=via)
    )


def probe_display_response(
    *, probe: Probe, viewer: AbstractBaseUser, request: HttpRequest, via: str = "page"
) -> HttpResponse:
    """The reduced copy a page shows for a large image (cases.probes.probe_display_copy)."""
    try:
        content, content_type = probes.probe_display_copy(probe=probe)
    except FileNotFoundError:
        raise Http404("The image is no longer held.") from None
    return response_recorded(
        image_bytes_response(content, content_type),
        lambda: probes.probe_image_view_record(probe=probe, viewer=viewer, display_copy=True, request=request, via=via),
    )


def face_crop_response(
    *, face: ProbeFace, viewer: AbstractBaseUser, request: HttpRequest, via: str = "page"
) -> FileResponse:
    """A probe face's aligned 112×112 crop (PNG), as stored when the face was found."""
    response = image_file_response(face.aligned_crop, "image/png")
    return response_recorded(
        response,
        lambda: probes.probe_image_view_record(probe=face.probe, face=face, viewer=viewer, request=request, via=via),
    )


def candidate_image_response(
    *, candidate: Candidate, viewer: AbstractBaseUser, request: HttpRequest, via: str = "page"
) -> FileResponse:
    """The gallery image the candidate came from; 404 once the gallery entry has been removed."""
    template = review.candidate_gallery_template(candidate=candidate)
    if template is None:
        raise Http404("The gallery image is no longer held.")
    return response_recorded(
        image_file_response(template.image.file),
        lambda: review.candidate_image_view_record(
            candidate=candidate, viewer=viewer, shown="gallery_image", request=request, via=via
        ),
    )


def candidate_crop_response(
    *, candidate: Candidate, viewer: AbstractBaseUser, request: HttpRequest, via: str = "page"
) -> HttpResponse:
    """The candidate's face aligned as the probe face was (PNG), rebuilt from the gallery image."""
    crop = review.candidate_aligned_crop(candidate=candidate)
    if crop is None:
        raise Http404("The gallery image is no longer held.")
    return response_recorded(
        png_response(crop),
        lambda: review.candidate_image_view_record(
            candidate=candidate, viewer=viewer, shown="aligned_crop", request=request, via=via
        ),
    )
