"""The same image twice in one case: an upload whose sha256 matches a probe already in the case.

Nothing is refused (a second upload may be deliberate, e.g. from another source); the upload answer and the
probe's page and API say so, with a link to the earlier probe, so the case does not search one image twice
without knowing.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from cases.models import Probe


def probe_duplicates(*, probe: Probe) -> list[Probe]:
    """The other probes of the probe's case with the same bytes (sha256), earliest first."""
    return list(
        Probe.objects.filter(case_id=probe.case_id, sha256=probe.sha256)
        .exclude(pk=probe.pk)
        .order_by("uploaded_at", "pk")
        .only("pk", "original_name", "uploaded_at", "case_id", "sha256")
    )


def probe_duplicates_view(*, probe: Probe) -> list[dict[str, Any]]:
    """The duplicates as the page and the API show them: id, name, when, link."""
    return [
        {
            "id": other.pk,
            "original_name": other.original_name,
            "uploaded_at": other.uploaded_at,
            "url": reverse("cases:probe", args=[other.pk]),
        }
        for other in probe_duplicates(probe=probe)
    ]


def probe_duplicate_warning(*, probe: Probe) -> str:
    """One sentence for an upload's answer, or "" when the image is new to the case."""
    others = probe_duplicates(probe=probe)
    if not others:
        return ""
    names = ", ".join(f"probe {other.pk}" for other in others)
    return f"{probe.original_name or 'This image'} is the same image (same sha256) as {names} already in this case."
