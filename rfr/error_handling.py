"""The one place where refusals become responses.

- API (`/api/…`): every error — a service's ApplicationError, DRF's validation, authentication, permission,
  throttling, parse and media-type errors, Django's 404 and 403, an oversize body, an unknown route, a server
  error — is JSON of one shape: {"error": CODE, "message": TEXT, "fields": {FIELD: [TEXT, …]}}, the
  "fields" key present only for validation errors. `api_exception_handler` is DRF's EXCEPTION_HANDLER;
  `api_not_found` answers unknown routes; `server_error` and `page_not_found` keep the shape for errors that
  never reach DRF.
- Pages: `ApplicationErrorMiddleware` turns an ApplicationError raised in a view into a message on the page it
  came from (`error_return_to` names it), or an error page with the right status (always for a 403).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from rfr.errors import ApplicationError, Forbidden, ServiceUnavailable

logger = logging.getLogger(__name__)

_Response = TypeVar("_Response", bound=HttpResponse)

API_PREFIX = "/api/"
SERVER_ERROR_MESSAGE = "Something went wrong on the server; nothing you sent was lost. Try again, or report the fault."
NOT_FOUND_MESSAGE = "Nothing is found at this address."

# DRF's own exception codes, renamed where the default would be vague to an API client.
_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
    drf_exceptions.ParseError: "parse_error",
}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The API's one error shape."""
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _with_retry_after(response: _Response, exc: ApplicationError) -> _Response:
    # A 503 says when to try again, so a client (or a person's script) waits rather than hammering.
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    return response


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _texts(detail: Any) -> list[str]:
    """Every message in a DRF error detail, flattened, without any key prefixes."""
    if isinstance(detail, dict):
        return [text for value in detail.values() for text in _texts(value)]
    if isinstance(detail, list | tuple):
        return [text for item in detail for text in _texts(item)]
    return [str(detail)]


def _validation_fields(detail: Any) -> tuple[str, dict[str, list[str]]]:
    """(message, fields) for a DRF ValidationError: messages not tied to a field go into the message only."""
    if not isinstance(detail, dict):
        return " ".join(_texts(detail)), {}
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for name, value in detail.items():
        if name in ("non_field_errors", "detail"):
            general += _texts(value)
        else:
            fields[str(name)] = _texts(value)
    described = [f"{name}: {' '.join(texts)}" for name, texts in fields.items()]
    return " ".join(general + described) or "The request is not valid.", fields


def _drf_body(exc: drf_exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, drf_exceptions.ValidationError):
        message, fields = _validation_fields(exc.detail)
        return error_body("invalid", message, fields)
    code = next((name for kind, name in _DRF_CODES.items() if isinstance(exc, kind)), None)
    return error_body(code or str(exc.default_code), " ".join(_texts(exc.detail)))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: any exception raised in an API view becomes the one JSON error shape."""
    if isinstance(exc, ApplicationError):
        return _with_retry_after(
            Response(error_body(exc.code, exc.message, exc.fields or None), status=exc.status), exc
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", "The request could not be read."), status=400)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", str(exc) or NOT_FOUND_MESSAGE), status=404)
    if isinstance(exc, PermissionDenied):
        message = str(exc) or "You may not do that."
        return Response(error_body("permission_denied", message), status=403)
    # DRF's own handler sets the headers a client needs (WWW-Authenticate, Allow, Retry-After).
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        logger.exception("unhandled error in an API view", exc_info=exc)
        return Response(error_body("server_error", SERVER_ERROR_MESSAGE), status=500)
    response.data = _drf_body(exc)
    return response


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any /api/ address that names no endpoint, whatever the method."""
    return JsonResponse(error_body("not_found", NOT_FOUND_MESSAGE), status=404)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse(error_body("not_found", NOT_FOUND_MESSAGE), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse(error_body("server_error", SERVER_ERROR_MESSAGE), status=500)
    return defaults.server_error(request)


# --- Pages ----------------------------------------------------------------------------------------------

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., Any])
_RETURN_TO = "error_return_to"


def error_return_to(url_name: str, *kwarg_names: str, fragment: str = "") -> Callable[[ViewFunc], ViewFunc]:
    """Name the page a refusal in this view is reported on: `url_name`, reversed with the view's own URL
    arguments `kwarg_names`. Apply it below @login_required so the mark travels with the wrapped view."""

    def mark(view: ViewFunc) -> ViewFunc:
        setattr(view, _RETURN_TO, (url_name, kwarg_names, fragment))
        return view

    return mark


def _return_url(request: HttpRequest, view: Any, view_kwargs: dict[str, Any]) -> str | None:
    mark = getattr(view, _RETURN_TO, None)
    if mark is not None:
        url_name, kwarg_names, fragment = mark
        url = reverse(url_name, kwargs={name: view_kwargs[name] for name in kwarg_names})
        return f"{url}#{fragment}" if fragment else url
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, {request.get_host()}, require_https=request.is_secure()):
        return referer
    return None


class ApplicationErrorMiddleware:
    """An ApplicationError raised in a page view becomes an error message on the page it came from (a
    redirect, so a reload does not post again), or, with nowhere to go back to, an error page with the
    error's status. API views answer JSON through api_exception_handler and never reach this."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, view_args: tuple[Any, ...], view_kwargs: dict[str, Any]
    ) -> None:
        request.rfr_view = (view, view_kwargs)  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError):
            return None
        if is_api_request(request):
            return _with_retry_after(
                JsonResponse(
                    error_body(exception.code, exception.message, exception.fields or None), status=exception.status
                ),
                exception,
            )
        view, view_kwargs = getattr(request, "rfr_view", (None, {}))
        # A refusal of who may act (403) is answered as Django answers PermissionDenied: a page, not a message.
        target = None if isinstance(exception, Forbidden) else _return_url(request, view, view_kwargs)
        if target is not None:
            messages.error(request, exception.message)
            return HttpResponseRedirect(target)
        return render(request, "error.html", {"error": exception}, status=exception.status)
