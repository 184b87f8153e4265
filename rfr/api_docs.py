"""The API documentation pages, for signed-in people only, served entirely from this server.

With drf-spectacular-sidecar installed (a dependency in pyproject.toml), /api/docs/ is Swagger UI from local
static files, its start-up script fetched from the same address (`?script`) so that the Content-Security-
Policy needs no inline script, and /api/redoc/ is ReDoc from local static files, in rfr's own template
(templates/api_redoc.html: drf-spectacular's own loads web fonts from Google). Without the sidecar, both are a
plain page listing every operation, linking to the schema; nothing is ever loaded from a CDN, so the
documentation works on a network with no way out.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def swagger_ui_available() -> bool:
    return importlib.util.find_spec("drf_spectacular_sidecar") is not None


def _operations() -> list[dict[str, Any]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    rows = []
    for path, item in schema.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation:
                summary = operation.get("summary") or operation.get("description", "").split("\n", 1)[0]
                rows.append({"method": method.upper(), "path": path, "summary": summary})
    return rows


_swagger_ui = SpectacularSwaggerSplitView.as_view(url_name="api-schema")
_redoc = SpectacularRedocView.as_view(url_name="api-schema", template_name="api_redoc.html")


@login_required
def api_docs(request: HttpRequest) -> HttpResponse:
    if swagger_ui_available():
        return _swagger_ui(request)
    return render(request, "api_docs.html", {"operations": _operations()})


@login_required
def api_redoc(request: HttpRequest) -> HttpResponse:
    if not swagger_ui_available():
        return render(request, "api_docs.html", {"operations": _operations()})
    response: HttpResponse = _redoc(request)
    policy = settings.RFR_CONTENT_SECURITY_POLICY
    if policy and "worker-src" not in policy:
        # ReDoc's search runs in a worker it makes from its own bundle as a blob: URL, which the site-wide
        # policy (worker-src falls back to script-src 'self') refuses. Only this page allows it, and only from
        # blob: URLs, which only this page's own scripts can make.
        response["Content-Security-Policy"] = f"{policy.rstrip('; ')}; worker-src 'self' blob:"
    return response
