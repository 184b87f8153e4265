"""Default score thresholds, set with the evidence in front of the person who sets them (/manage/thresholds/).

Two defaults, each for one model pack (a threshold means nothing for another pack's scores):
- the system default of a pack (`PackThreshold`, one row per pack), which falls back to the setting
  RFR_DEFAULT_THRESHOLD where none is stored;
- a gallery's own default (`Gallery.default_threshold`, with the pack it was set for), for a gallery whose use
  calls for a stricter (or looser) line.

A search where the investigator chose no threshold uses, for each gallery it searches, the gallery's default
(where set for the search's pack) or else the system default, and keeps the highest of those: one threshold
applies to the whole candidate list, and the strictest protects every gallery searched. The search records the
value and where it came from (`threshold_for_search`).

Every change is audited with the figures the page showed before saving: the expected overall and per-group
false-match and false-non-match rates at the new value on each stored evaluation of the pack
(search.accuracy.threshold_evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from rfr.errors import InvalidInput
from rfr.limits import text_limit_check
from search.accuracy import threshold_evidence
from search.models import Gallery, PackThreshold

Actor = AbstractBaseUser | AnonymousUser | None

SOURCE_SETTING = "setting"
SOURCE_SYSTEM = "system"
SOURCE_GALLERY = "gallery"


def system_threshold(*, pack_key: str) -> tuple[float, str]:
    """The pack's system default and its source: the stored value ("system"), else the setting ("setting")."""
    stored = PackThreshold.objects.filter(pack_key=pack_key).values_list("threshold", flat=True).first()
    if stored is not None:
        return float(stored), SOURCE_SYSTEM
    return float(settings.RFR_DEFAULT_THRESHOLD), SOURCE_SETTING


def gallery_threshold(gallery: Gallery, *, pack_key: str) -> float | None:
    """The gallery's own default for this pack, or None (unset, or set for another pack)."""
    if gallery.default_threshold is None or gallery.default_threshold_pack_key != pack_key:
        return None
    return float(gallery.default_threshold)


@dataclass(frozen=True)
class ThresholdChoice:
    value: float
    source: str  # SOURCE_SETTING, SOURCE_SYSTEM or SOURCE_GALLERY
    gallery: str = ""  # the gallery whose default decided, when source is "gallery"


def threshold_for_search(*, pack_key: str, galleries: Sequence[Gallery]) -> ThresholdChoice:
    """The default threshold of a search of these galleries: the highest of each gallery's own default (for this
    pack) or, for a gallery without one, the system default."""
    system, system_source = system_threshold(pack_key=pack_key)
    best = ThresholdChoice(value=system, source=system_source)
    for gallery in galleries:
        own = gallery_threshold(gallery, pack_key=pack_key)
        if own is not None and (own > best.value or (best.source != SOURCE_GALLERY and own >= best.value)):
            best = ThresholdChoice(value=own, source=SOURCE_GALLERY, gallery=gallery.name)
    return best


def threshold_value_check(value: Any) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("invalid_threshold", "The threshold is a number between -1 and 1.") from None
    if not -1.0 <= threshold <= 1.0 or threshold != threshold:
        raise InvalidInput("invalid_threshold", "The threshold is a similarity between -1 and 1.")
    return threshold


def _user_or_none(actor: Actor) -> Any:
    return actor if actor is not None and actor.is_authenticated else None


def _reason_check(reason: str) -> str:
    reason = (reason or "").strip()
    text_limit_check("threshold_reason", reason, label="reason")
    if not reason:
        raise InvalidInput("reason_required", "Say why the threshold changes; the reason is kept in the audit trail.")
    return reason


def _evidence_record(*, pack_key: str, threshold: float) -> list[dict[str, Any]]:
    return [e["record"] for e in threshold_evidence(pack_key=pack_key, threshold=threshold)]


def threshold_system_set(
    *, pack_key: str, threshold: Any, reason: str, actor: Actor = None, request: HttpRequest | None = None
) -> PackThreshold:
    """Store the pack's system default, audited with the reason and the expected error rates at the new value."""
    value = threshold_value_check(threshold)
    reason = _reason_check(reason)
    with transaction.atomic():
        before, before_source = system_threshold(pack_key=pack_key)
        row, _ = PackThreshold.objects.update_or_create(
            pack_key=pack_key,
            defaults={"threshold": value, "reason": reason, "set_by": _user_or_none(actor)},
        )
        audit_event_record(
            action=AuditAction.THRESHOLD_SYSTEM_SET,
            actor=actor,
            target=row,
            request=request,
            detail={
                "pack_key": pack_key,
                "before": before,
                "before_source": before_source,
                "after": value,
                "reason": reason,
                "evidence": _evidence_record(pack_key=pack_key, threshold=value),
            },
        )
    return row


def gallery_threshold_set(
    *,
    gallery: Gallery,
    pack_key: str,
    threshold: Any,
    reason: str,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> Gallery:
    """Set (or, with None, clear) a gallery's own default for a pack, audited like the system default."""
    value = None if threshold is None or threshold == "" else threshold_value_check(threshold)
    reason = _reason_check(reason)
    with transaction.atomic():
        gallery = Gallery.objects.select_for_update().get(pk=gallery.pk)
        before = {"threshold": gallery.default_threshold, "pack_key": gallery.default_threshold_pack_key}
        gallery.default_threshold = value
        gallery.default_threshold_pack_key = pack_key if value is not None else ""
        gallery.save(update_fields=["default_threshold", "default_threshold_pack_key"])
        audit_event_record(
            action=AuditAction.GALLERY_THRESHOLD_SET,
            actor=actor,
            target=gallery,
            request=request,
            detail={
                "gallery": gallery.name,
                "pack_key": pack_key,
                "before": before,
                "after": value,
                "reason": reason,
                "evidence": _evidence_record(pack_key=pack_key, threshold=value) if value is not None else [],
            },
        )
    return gallery
