"""The one family of errors that services raise: a refusal a person can act on.

Each error carries a stable `code` (for API clients and tests), a plain-language `message` (for people) and
the HTTP status it maps to. Services raise these and nothing else for refusals; `rfr.error_handling` turns
them into the API's JSON error body and into a page message for the HTML views, so no view has to translate.

    raise Conflict("case_closed", "Case OP-1 is closed, so a new search is not possible.")

Access checks are not errors of this family: a case the user may not see is Http404 (an outsider must not
learn that it exists), and a case they may see but not act on is PermissionDenied, both from Django.
Nor are broken invariants (a template of the wrong dimension, a corrupt index file, biometric data handed to
the audit log): those stay ValueError or RuntimeError, because they are faults to fix, not answers to give,
and reach a person as a server error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApplicationError(Exception):
    """A refusal with a stable code and a message a person can act on. Subclasses fix the HTTP status."""

    status = 400

    def __init__(self, code: str, message: str, *, fields: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = {name: [str(text) for text in texts] for name, texts in (fields or {}).items()}

    def __str__(self) -> str:
        return self.message


class InvalidInput(ApplicationError):
    """The request is malformed or breaks a rule about its content (400); `fields` names the culprits."""

    status = 400


class Forbidden(ApplicationError):
    """The user may see the object but not do this to it (403)."""

    status = 403


class NotFound(ApplicationError):
    """Something the request names does not exist (404), e.g. an unknown gallery id."""

    status = 404


class Conflict(ApplicationError):
    """The request is valid but the object's state forbids it now (409): a closed case, a second decision."""

    status = 409


class PayloadTooLarge(ApplicationError):
    """The upload is larger than the stated limit (413)."""

    status = 413


class UnsupportedMediaType(ApplicationError):
    """The upload is not of a kind rfr reads (415)."""

    status = 415


class ServiceUnavailable(ApplicationError):
    """A service rfr depends on (the task queue) cannot be reached now; nothing was stored (503).

    `retry_after` (seconds) is sent as the Retry-After header."""

    status = 503
    retry_after = 30
