"""System checks for a deployment (`manage.py check --deploy`) beyond Django's own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

DEFAULT_SECRET_KEY_ID = "rfr.E001"


@register(Tags.security, deploy=True)
def secret_key_not_default(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Django's own check (security.W009) judges only a key's length and variety; the built-in key passes it
    # but is published with the source.
    if settings.SECRET_KEY == settings.RFR_DEFAULT_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is rfr's built-in default, which is public.",
                hint="Set RFR_SECRET_KEY to a long random value, e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(50))'.",
                id=DEFAULT_SECRET_KEY_ID,
            )
        ]
    return []
