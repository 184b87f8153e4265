"""Every size and length limit on what a person may send, in one place.

- The upload limit (`RFR_MAX_UPLOAD_BYTES`, 40 MB by default) and the allowance for the rest of a request
  around a file (form fields, multipart headers): `request_body_limit()` is what the WSGI layer
  (`rfr.wsgi`) lets in before any byte of a body is read.
- The longest text each free-text field accepts (`TEXT_LIMITS`), enforced by the services with
  `text_limit_check` (so a page form, the API and a script are held to the same rule) and advertised by the
  forms and serializers with the same numbers.

Messages state sizes in the same unit as the documentation: binary megabytes (1 MB = 1,048,576 bytes).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings

from rfr.errors import InvalidInput

MEGABYTE = 1024 * 1024
# Set in the WSGI environ by rfr.wsgi on a request whose body it refused without reading it.
BODY_REFUSED_KEY = "rfr.body_refused"

# Longest accepted text per field, in characters. Long enough for a careful paragraph or several, short
# enough that the audit row, the page and the PDF report stay readable.
TEXT_LIMITS: dict[str, int] = {
    "justification": 4000,
    "rationale": 4000,
    "small_face_reason": 2000,
    "legal_basis": 4000,
    "probe_description": 2000,
    "case_close_reason": 2000,
    "case_reopen_reason": 2000,
    "removal_reason": 1000,
    "gallery_description": 2000,
    "gallery_provenance": 2000,
    "threshold_reason": 2000,
    "case_note": 4000,
}


def megabytes(size: int) -> str:
    """A byte count as the documentation states it: "40 MB", "41.5 MB"."""
    value = size / MEGABYTE
    return f"{value:.0f} MB" if value == round(value) else f"{value:.1f} MB"


def upload_limit_bytes() -> int:
    return int(settings.RFR_MAX_UPLOAD_BYTES)


# Routes that take a larger body than one probe image (a gallery's bulk enrolment zip), registered by the app
# that serves them (AppConfig.ready), so the kernel names no app's URLs.
_BODY_LIMIT_ROUTES: list[tuple[re.Pattern[str], Callable[[], int]]] = []


def body_limit_register(path_pattern: str, upload_limit: Callable[[], int]) -> None:
    """Let requests whose path matches `path_pattern` (a regular expression on PATH_INFO) carry one upload of
    `upload_limit()` bytes instead of RFR_MAX_UPLOAD_BYTES. The view must check the size itself too."""
    compiled = re.compile(path_pattern)
    if all(existing.pattern != compiled.pattern for existing, _ in _BODY_LIMIT_ROUTES):
        _BODY_LIMIT_ROUTES.append((compiled, upload_limit))


def request_body_limit(path: str = "") -> int:
    """The most bytes a request body to `path` may carry: one upload at the route's limit (RFR_MAX_UPLOAD_BYTES
    unless a route registered a larger one) plus the envelope around it."""
    upload = upload_limit_bytes()
    for pattern, upload_limit in _BODY_LIMIT_ROUTES:
        if pattern.fullmatch(path):
            upload = upload_limit()
            break
    return upload + int(settings.RFR_REQUEST_ENVELOPE_BYTES)


def text_limit(field: str) -> int:
    return TEXT_LIMITS[field]


def text_limit_check(field: str, value: str | None, *, label: str | None = None) -> None:
    """Refuse (400 `text_too_long`) a text longer than its field's limit, before anything is stored or
    audited. `field` names the entry in TEXT_LIMITS and, without `label`, the field in the error."""
    limit = TEXT_LIMITS[field]
    # A browser counts a line break as one character towards a textarea's maxlength but sends it as two.
    length = len(value.replace("\r\n", "\n")) if value is not None else 0
    if length > limit:
        name = label or field
        words = name.replace("_", " ")
        message = f"The {words} is {length:,} characters long; the limit is {limit:,}. Shorten it."
        raise InvalidInput("text_too_long", message, fields={name: [message]})
