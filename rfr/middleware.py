"""Request-wide protections that every page and API call shares.

- `TrustedProxyMiddleware`: the client's address. REMOTE_ADDR is the connecting peer; only when that peer is
  one of `RFR_TRUSTED_PROXIES` are its X-Forwarded-For / X-Real-IP believed, and REMOTE_ADDR becomes the
  client it reports. From any other peer the forwarding headers are dropped, so that nothing later (the
  sign-in lockout, the audit trail's IP, DRF's throttles, Django's HTTPS detection) can be fooled by them.
- `SecurityHeadersMiddleware`: Content-Security-Policy on every response, and `Cache-Control: no-store` on
  everything but static files and the health check: case pages, audit pages, admin pages and API JSON must
  not linger in a browser's or a proxy's cache.
- `RequestTooLargeMiddleware`: answers a body that `rfr.wsgi` refused unread with 413, as JSON under /api/
  and as a page elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from rfr.error_handling import error_body, is_api_request
from rfr.errors import PayloadTooLarge
from rfr.limits import BODY_REFUSED_KEY, megabytes, upload_limit_bytes
from rfr.proxies import client_address, ip_address_of, is_trusted, trusted_proxy_networks

# The peer's own address, kept when REMOTE_ADDR is replaced by the client a trusted proxy reported.
PEER_ADDR_KEY = "rfr.peer_addr"
_FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")
_NEVER_CACHED_EXEMPT = ("/static/",)
_NEVER_CACHED_EXEMPT_EXACT = ("/healthz",)


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        peer = str(meta.get("REMOTE_ADDR") or "")
        networks = trusted_proxy_networks()
        peer_address = ip_address_of(peer)
        if peer_address is not None and is_trusted(peer_address, networks):
            meta[PEER_ADDR_KEY] = peer
            meta["REMOTE_ADDR"] = client_address(meta, networks)
            # Resolved once: DRF's throttles would otherwise read X-Forwarded-For themselves.
            meta.pop("HTTP_X_FORWARDED_FOR", None)
            meta.pop("HTTP_X_REAL_IP", None)
        else:
            for header in _FORWARDING_HEADERS:
                meta.pop(header, None)
        return self.get_response(request)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.RFR_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        path = request.path
        if not path.startswith(_NEVER_CACHED_EXEMPT) and path not in _NEVER_CACHED_EXEMPT_EXACT:
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response


def request_too_large_message() -> str:
    limit = megabytes(upload_limit_bytes())
    return f"The request is larger than rfr accepts: one image of at most {limit} per upload. Send a smaller copy."


class RequestTooLargeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.META.get(BODY_REFUSED_KEY):
            return self.get_response(request)
        error = PayloadTooLarge("request_too_large", request_too_large_message())
        if is_api_request(request):
            return JsonResponse(error_body(error.code, error.message), status=error.status)
        return render(request, "error.html", {"error": error}, status=error.status)
