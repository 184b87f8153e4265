"""The OpenAPI schema says what every endpoint refuses, and in which shape (rfr.error_handling).

`ErrorDocumentingAutoSchema` adds the one error body to each operation's responses for the statuses it can
answer: 401, 403 (and 429 on throttled endpoints) everywhere; 404 where the path names an object; 400, 413
and 415 where it takes a body; 405 and 500 always; 503 where a POST queues work (a view's `queues_work`).
Statuses an operation declares itself keep its own text.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": serializers.CharField(help_text="A stable code, e.g. not_found, invalid, case_closed."),
        "message": serializers.CharField(help_text="What went wrong, in words a person can act on."),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors only: each offending field with its messages.",
        ),
    },
)

SCHEMA_REQUIRED = "schema_required_fields"
"""An input serializer's class attribute naming fields the schema marks required although the serializer lets
them through: the service refuses a missing or blank value (400) with its own code and words (e.g.
`justification_required`: "Say why this search is necessary and proportionate…"), which say more than a
generic "This field is required."."""


_DESCRIPTIONS = {
    "400": "The request is not valid (validation errors name the fields).",
    "401": "No valid credentials: send `Authorization: Token <key>` or sign in.",
    "403": "Signed in, but not allowed to do this.",
    "404": "No such object, or not one the user may see.",
    "405": "The method is not allowed here.",
    "409": "The object's state forbids this now.",
    "413": "The upload is larger than the stated limit.",
    "415": "The body is not of a supported type.",
    "429": "Too many requests; retry after the time in `Retry-After`.",
    "500": "A server fault; nothing sent was lost.",
    "503": "The task queue cannot be reached (`queue_unavailable`); nothing was stored. Retry after `Retry-After`.",
}


class ErrorDocumentingAutoSchema(AutoSchema):
    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if direction == "request":
            marked = list(getattr(force_instance(serializer), SCHEMA_REQUIRED, ()))
            if marked:
                schema["required"] = sorted({*schema.get("required", []), *marked})
        return schema

    def _error_codes(self) -> list[str]:
        codes = ["401", "403", "405", "500"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "413", "415"]
        if getattr(self.view, "throttle_classes", None):
            codes.append("429")
        if self.method == "POST" and getattr(self.view, "queues_work", False):
            codes.append("503")
        return codes

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = _DESCRIPTIONS[code]
                responses[code] = response
        return responses
