"""How an audit event reads to a person on `/audit/` and a case's timeline: its detail as labelled fields,
not a raw mapping.

One generic mapping of detail key to label serves every action (the keys are shared across actions: `reason`,
`pack_key`, `sha256`...), with the few keys whose words are not their name listed in `DETAIL_LABELS`; values
read as text (lists joined, yes/no, nested mappings as "label: value"). What may be shown was decided before
(audit.selectors.audit_events_for_reader): this only words it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.actions import AUDIT_ACTION_DESCRIPTIONS, AuditAction

# Keys whose label is not their name with spaces; everything else reads as "Size bytes" from "size_bytes".
DETAIL_LABELS: dict[str, str] = {
    "sha256": "SHA-256",
    "parent_sha256": "Parent SHA-256",
    "labels_sha256": "Labels SHA-256",
    "report_sha256": "Report SHA-256",
    "annex_sha256": "Annex SHA-256",
    "pack_key": "Model pack",
    "pack": "Model pack",
    "top_k": "List length",
    "by": "By",
    "via": "Through",
    "ip": "Address",
    "fmr": "False-match rate",
    "fnmr": "False non-match rate",
    "totp": "Authenticator",
    "api": "API",
    "up_to_seq": "Up to event #",
    "rows": "Rows",
    "redacted": "Withheld",
    "withheld": "Withheld",
    "subject_ref": "Subject reference",
    "external_ref": "External reference",
    "small_face_reason": "Reason to search a very small face",
    "lawfully_held": "Lawfully held (stated)",
    "size_bytes": "Size (bytes)",
    "retention_days": "Retention (days)",
    "silent_seconds": "Silent (seconds)",
    "grace_seconds": "Grace (seconds)",
    "is_staff": "Staff",
    "is_superuser": "Superuser",
    "user_id": "User #",
    "team_id": "Team #",
    "probe_id": "Probe #",
    "face_id": "Face #",
    "search_id": "Search #",
    "candidate_id": "Candidate #",
    "gallery_id": "Gallery #",
    "subject_id": "Subject #",
    "run_id": "Run #",
    "cohort_id": "Cohort #",
    "group_id": "Group #",
    "parent_id": "Parent probe #",
    "device_id": "Device #",
    "object_id": "Object #",
    "gallery_image_id": "Gallery image #",
}
EMPTY = "—"


def detail_label(key: str) -> str:
    """The words for a detail key: its listed label, or the key with spaces and a capital."""
    if key in DETAIL_LABELS:
        return DETAIL_LABELS[key]
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else key


def detail_value(value: Any) -> str:
    """A detail value as text: yes/no, numbers as written, lists joined, a gallery-like {id, name} by its name,
    nested mappings as "label: value" pairs."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        if "name" in value and set(value) <= {"id", "name"}:
            return str(value["name"])
        return "; ".join(f"{detail_label(str(k))}: {detail_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(detail_value(item) for item in value)
    return str(value)


def audit_detail_fields(detail: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) for each key of an event's detail, in the order written; a withholding note last."""
    detail = detail or {}
    notes = {"redacted", "withheld"}
    fields = [(detail_label(k), detail_value(v)) for k, v in detail.items() if k not in notes]
    return fields + [(detail_label(k), detail_value(detail[k])) for k in sorted(notes) if k in detail]


def audit_action_description(action: str) -> str:
    """What an action records, in words ("" for a value outside the vocabulary, which rows never hold)."""
    try:
        return AUDIT_ACTION_DESCRIPTIONS[AuditAction(action)]
    except ValueError:
        return ""
