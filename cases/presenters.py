"""How case objects read to a person, shared by the pages, the API and the PDF report so they never disagree:
the words for a candidate's state (always with the intelligence-only wording for a possible match), a face's
quality warnings in plain language, and the progress of long work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Probe, ProbeFace, Search
from faceengine.quality import WARNING_TEXT

REMOVED_SUBJECT_TEXT = "removed from the gallery"


def candidate_removal_text(candidate: Candidate) -> str:
    """Why a candidate reads "removed" (empty while its gallery entry is held); the reason given for a deletion
    request is not repeated here: it is for the gallery's keepers and the audit trail, not the case."""
    if candidate.subject_removed_at is None:
        return ""
    when = timezone.localtime(candidate.subject_removed_at).strftime("%Y-%m-%d")
    return (
        f"This candidate's gallery image was removed from the gallery on {when}"
        f" ({candidate.get_subject_removal_display()}): the subject reference and image are no longer held and"
        " no decision can be recorded."
    )


def candidate_subject(candidate: Candidate) -> str:
    """The subject column of a candidate list: the reference, or the removal marker once it has gone."""
    return REMOVED_SUBJECT_TEXT if candidate.subject_removed_at is not None else candidate.subject_ref


def candidate_label(candidate: Candidate) -> str:
    """The words shown for a candidate; a possible match always carries the intelligence-only wording, and a
    candidate whose gallery entry was removed always says so."""
    label = _outcome_label(candidate)
    removal = candidate_removal_text(candidate)
    return f"{removal} Assessment: {label}" if removal else label


def _outcome_label(candidate: Candidate) -> str:
    outcome = candidate.outcome
    if outcome == Candidate.Outcome.POSSIBLE_MATCH:
        return f"{POSSIBLE_MATCH_WORDING} (awaiting an independent second review; not released)"
    if outcome == Candidate.Outcome.RELEASED:
        return f"{POSSIBLE_MATCH_WORDING} (agreed by a second reviewer; released to the case)"
    if outcome == Candidate.Outcome.DISPUTED:
        return "Not released: the two assessments disagree"
    return str(candidate.get_outcome_display())


def face_warnings(face: ProbeFace) -> list[tuple[str, str]]:
    """(code, plain-language text) for each quality warning on the face."""
    return [(code, WARNING_TEXT.get(code, code)) for code in face.warnings]


def face_view(face: ProbeFace) -> dict[str, Any]:
    return {
        "face": face,
        "warnings": face_warnings(face),
        "very_small": "very_small" in face.warnings,
        "uncertain": face.uncertain,
    }


def faces_in_order(faces: Iterable[ProbeFace]) -> list[ProbeFace]:
    """A probe's faces as pages and the API list them: by number, uncertain detections after the others."""
    return sorted(faces, key=lambda face: (face.uncertain, face.index))


def outcome_error(code: str, message: str) -> dict[str, str] | None:
    """A stored processing failure (probe or search) as pages and the API show it."""
    return {"code": code, "message": message} if code else None


def _progress(work: Probe | Search) -> dict[str, Any]:
    return {
        "id": work.pk,
        "status": work.status,
        "status_text": work.get_status_display(),
        "progress": work.progress,
        "error": outcome_error(work.error_code, work.error_message),
    }


def probe_progress(probe: Probe) -> dict[str, Any]:
    """What a progress bar polls while a probe is processed."""
    return {**_progress(probe), "faces": probe.faces.count()}


def search_progress(search: Search) -> dict[str, Any]:
    """What a progress bar polls while a search runs."""
    return _progress(search)
