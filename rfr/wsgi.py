"""The WSGI entry point (`gunicorn rfr.wsgi`, or any WSGI server), with the request-body cap in front of
Django.

The cap sits here, not in the server's configuration, so that it holds under every WSGI server: gunicorn's
`--limit-request-*` flags bound the request line and headers only, and Django's own limits apply to form
fields, not to uploaded files. A body declared larger than one upload plus its envelope
(`rfr.limits.request_body_limit`) is refused with 413 before a byte of it is read; a body of unknown length
(chunked) is read through `LimitedInput`, which refuses to go past the same cap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.wsgi import get_wsgi_application

from rfr.limits import BODY_REFUSED_KEY, request_body_limit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LimitedInput:
    """A wsgi.input of unknown length that raises RequestDataTooBig instead of reading past `limit` bytes
    (Django answers it as a 413 on the API and a 400 page elsewhere)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.consumed = 0

    def _take(self, data: bytes) -> bytes:
        self.consumed += len(data)
        if self.consumed > self.limit:
            raise RequestDataTooBig("The request body is larger than the server accepts.")
        return data

    def _allowance(self, size: int | None) -> int:
        room = self.limit + 1 - self.consumed  # one byte past the limit is enough to know it is too big
        return room if size is None or size < 0 else min(size, room)

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self.stream.read(self._allowance(size)))

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self.stream.readline(self._allowance(size)))

    def __iter__(self) -> LimitedInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class RequestBodyLimit:
    """WSGI middleware: the body cap. `limit` is called per request, so settings changed in tests apply."""

    def __init__(self, app: WSGIApp, limit: Callable[[str], int]) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        limit = self.limit(str(environ.get("PATH_INFO") or ""))
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0 or length > limit:
                # Django sees a request with no body and answers 413 (rfr.middleware.RequestTooLargeMiddleware).
                environ[BODY_REFUSED_KEY] = True
                environ["CONTENT_LENGTH"] = "0"
                environ["wsgi.input"] = io.BytesIO(b"")
        elif "wsgi.input" in environ:
            environ["wsgi.input"] = LimitedInput(environ["wsgi.input"], limit)
        return self.app(environ, start_response)


application = RequestBodyLimit(get_wsgi_application(), request_body_limit)
