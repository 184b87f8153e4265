"""One stated upload limit (40 MB), enforced before the body is read, under any WSGI server.

The requests go through `rfr.wsgi.application` itself (the object gunicorn serves), with a wsgi.input that
counts what is read from it, so "refused before reading" is measured, not assumed.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

import faceengine
from faceengine import ImageLimits
from rfr.limits import MEGABYTE, megabytes, request_body_limit
from rfr.wsgi import LimitedInput, RequestBodyLimit, application
from tests.factories import build_case_world

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

DECLARED_200_MB = 200 * 1000 * 1000


class CountingInput:
    """A request body that is never exhausted and records how many bytes were read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        size = 64 * 1024 if size is None or size < 0 else size
        self.read_bytes += size
        return b"x" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def wsgi_call(path: str, *, method: str = "POST", body: Any, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.10",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    status: list[str] = []
    response_headers: dict[str, str] = {}

    def start_response(line: str, pairs: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)
        response_headers.update(pairs)

    # As Django's test client does: the test's transaction must outlive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), response_headers, content


def test_the_stated_limit_is_40_mb() -> None:
    assert settings.RFR_MAX_UPLOAD_BYTES == 41_943_040 == 40 * MEGABYTE
    assert megabytes(settings.RFR_MAX_UPLOAD_BYTES) == "40 MB"
    # Form fields and JSON bodies have the envelope only; files are spooled to disk above 5 MB.
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.RFR_REQUEST_ENVELOPE_BYTES
    assert request_body_limit() == settings.RFR_MAX_UPLOAD_BYTES + settings.RFR_REQUEST_ENVELOPE_BYTES


def test_the_file_too_large_message_says_40_mb_as_the_docs_do() -> None:
    with pytest.raises(faceengine.ImageRejected) as refused:
        faceengine.decode_image(b"\xff" * (40 * MEGABYTE + 1), ImageLimits(max_bytes=40 * MEGABYTE))
    assert refused.value.code == "file_too_large"
    assert "the limit is 40 MB" in refused.value.message
    assert "42" not in refused.value.message


def test_a_declared_200_mb_api_upload_is_refused_413_without_reading_the_body() -> None:
    world = build_case_world()
    body = CountingInput()
    status, headers, content = wsgi_call(
        f"/api/cases/{world.case.pk}/probes/",
        body=body,
        headers={"CONTENT_LENGTH": str(DECLARED_200_MB), "CONTENT_TYPE": "multipart/form-data; boundary=x"},
    )
    assert status == 413
    assert body.read_bytes == 0
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(content)
    assert payload["error"] == "request_too_large"
    assert "40 MB" in payload["message"]
    assert set(payload) == {"error", "message"}


def test_a_declared_200_mb_page_upload_is_refused_with_a_page_without_reading_the_body() -> None:
    world = build_case_world()
    body = CountingInput()
    status, headers, content = wsgi_call(
        f"/cases/{world.case.pk}/workbench/upload/",
        body=body,
        headers={"CONTENT_LENGTH": str(DECLARED_200_MB), "CONTENT_TYPE": "multipart/form-data; boundary=x"},
    )
    assert status == 413
    assert body.read_bytes == 0
    assert headers["Content-Type"].startswith("text/html")
    assert b"40 MB" in content


def test_a_body_just_over_the_cap_is_refused_and_one_within_it_is_let_through() -> None:
    limit = request_body_limit()
    over = CountingInput()
    status, _, _ = wsgi_call("/api/cases/", body=over, headers={"CONTENT_LENGTH": str(limit + 1)})
    assert (status, over.read_bytes) == (413, 0)
    # Within the cap the request reaches the API as usual (here: 401, nobody signed in).
    status, _, content = wsgi_call(
        "/api/cases/",
        body=io.BytesIO(b"{}"),
        headers={"CONTENT_LENGTH": "2", "CONTENT_TYPE": "application/json"},
    )
    assert status == 401, content


def test_a_body_of_unknown_length_is_read_no_further_than_the_cap() -> None:
    source = CountingInput()
    limited = LimitedInput(source, limit=1000)
    assert len(limited.read(600)) == 600
    with pytest.raises(RequestDataTooBig):
        limited.read()  # everything: stops one byte past the cap
    assert source.read_bytes == 1001


def test_a_chunked_body_is_read_through_the_cap_by_whatever_app_is_behind_it() -> None:
    # gunicorn hands a chunked body over with no CONTENT_LENGTH; the app behind the cap cannot read past it.
    seen: dict[str, Any] = {}

    def greedy_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except RequestDataTooBig:
            seen["refused"] = True
        start_response("200 OK", [])
        return [b""]

    source = CountingInput()
    capped = RequestBodyLimit(greedy_app, lambda _path: 5000)
    capped({"REQUEST_METHOD": "POST", "wsgi.input": source, "HTTP_TRANSFER_ENCODING": "chunked"}, lambda *a: None)
    assert seen == {"refused": True}
    assert source.read_bytes == 5001


def test_a_gallery_enrolment_zip_may_be_larger_than_a_probe_upload_and_no_larger_than_its_own_cap() -> None:
    zip_path = "/manage/galleries/7/enrol/zip/"
    zip_cap = request_body_limit(zip_path)
    assert zip_cap == settings.RFR_ENROLMENT_ZIP_MAX_BYTES + settings.RFR_REQUEST_ENVELOPE_BYTES
    assert zip_cap > request_body_limit() == request_body_limit("/manage/galleries/7/")
    # 200 MB is over the probe cap but within the zip cap: it reaches Django, which refuses it for its own
    # reasons (no CSRF token, nobody signed in), not for its size.
    body = CountingInput()
    status, _, _ = wsgi_call(zip_path, body=body, headers={"CONTENT_LENGTH": str(DECLARED_200_MB)})
    assert status in (302, 403)
    over = CountingInput()
    status, _, _ = wsgi_call(zip_path, body=over, headers={"CONTENT_LENGTH": str(zip_cap + 1)})
    assert (status, over.read_bytes) == (413, 0)
