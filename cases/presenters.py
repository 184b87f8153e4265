"""How case objects read to a person, shared by the pages, the API and the PDF report so they never disagree:
the words for a candidate's state (always with the intelligence-only wording for a possible match), what its
score means (the estimated false-match rate from the evaluation the search relied on, never a probability of
identity), a face's quality warnings in plain language, the chain of an enhanced (derived) probe, and the
progress of long work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

import faceengine
from cases.enhancement import probe_lineage
from cases.features import feature_checklist_rows
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Decision, Probe, ProbeFace, Search
from cases.probes import PROBE_STAGE_PROGRESS, STAGE_SAVING
from faceengine.enhance import operation_describe
from faceengine.quality import MANUAL_LANDMARKS, WARNING_TEXT
from search.accuracy import ScoreMeaning, dataset_label, impostor_pairs, one_in, score_meaning

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


def candidate_score_meaning(candidate: Candidate) -> ScoreMeaning:
    """The candidate's score in words, read from the evaluation its search recorded when it was requested (so a
    report made later says the same); without one: no stored evaluation."""
    return score_meaning(score=candidate.score, run=candidate.search.evaluation_run)


def candidate_score_phrase(candidate: Candidate) -> str:
    """The score's meaning in a few words for a candidate list, e.g. "about 1 in 10,000 different-person pairs
    score this high on UTKFace (research data set)"; read from the same evaluation as candidate_score_meaning,
    and like it never a probability of identity."""
    meaning = candidate_score_meaning(candidate)
    run = candidate.search.evaluation_run
    if run is None or not meaning.dataset:
        return "no measured meaning: no stored evaluation for this pack"
    if meaning.fmr is None:
        return f"no false-match figures on {meaning.dataset}"
    if meaning.fmr <= 0:
        pairs = impostor_pairs(run)
        among = f"none of {pairs:,}" if pairs else "none of the"
        return f"{among} different-person pairs scored this high on {meaning.dataset}"
    return f"about {one_in(meaning.fmr)} different-person pairs score this high on {meaning.dataset}"


def decision_feature_rows(decision: Decision) -> list[tuple[str, str]]:
    """The decision's feature checklist as (feature, assessment) rows for pages and the report; empty when the
    reviewer recorded none (older decisions, or a checklist left blank)."""
    return feature_checklist_rows(decision.features) if decision.features else []


def search_evidence_text(search: Search) -> str:
    """Which stored evaluation the search's threshold and scores' meaning relied on."""
    run = search.evaluation_run
    if run is None:
        return "no stored evaluation for this pack when the search was requested"
    return f"evaluation #{run.pk} on {dataset_label(run)}, {run.get_kind_display().lower()}"


def face_warnings(face: ProbeFace) -> list[tuple[str, str]]:
    """(code, plain-language text) for each quality warning on the face."""
    return [(code, WARNING_TEXT.get(code, code)) for code in face.warnings]


MANUALLY_MARKED_TEXT = "manually marked"
MANUAL_LANDMARKS_WARNING = WARNING_TEXT[MANUAL_LANDMARKS]


def _who(face: ProbeFace) -> str:
    return face.drawn_by.get_username() if face.drawn_by_id and face.drawn_by else "a person"


def face_marking_text(face: ProbeFace) -> str:
    """Who placed a manually marked face's landmarks ("" for any other face), shown beside the "manually
    marked" label."""
    return f"the five landmarks were placed by hand by {_who(face)}" if face.manually_marked else ""


def face_origin_text(face: ProbeFace) -> str:
    """How the face came to be, where a person had a hand in it ("" for a face the detector found): a
    face made from hand-placed landmarks always reads "manually marked", with who placed the points."""
    if face.origin == ProbeFace.Origin.MANUAL:
        return f"{MANUALLY_MARKED_TEXT}: {face_marking_text(face)}"
    if face.origin == ProbeFace.Origin.DRAWN:
        return f"found inside a box drawn by {_who(face)}"
    return ""


def face_label(face: ProbeFace) -> str:
    """ "Face 3 of probe #12", with "(manually marked)" for a face made from hand-placed landmarks."""
    label = f"Face {face.index} of probe #{face.probe_id}"
    return f"{label} ({MANUALLY_MARKED_TEXT})" if face.manually_marked else label


def face_view(face: ProbeFace) -> dict[str, Any]:
    return {
        "face": face,
        "warnings": face_warnings(face),
        "very_small": "very_small" in face.warnings,
        "origin_text": face_origin_text(face),
        "marking_text": face_marking_text(face),
        "face_label": face_label(face),
        "uncertain": face.uncertain,
    }


def overlay_label(probe: Probe) -> dict[str, int]:
    """Font size and outline, in image pixels, of the face numbers drawn over a probe image: 28 and 3 up to
    1,280 pixels wide, then growing with the image, so a number on a 7500-pixel photo shown 760 pixels wide
    still reads at about 15 screen pixels."""
    size = max(28, round(max(probe.width or 0, probe.height or 0) / 45))
    return {"size": size, "stroke": max(3, round(size / 9))}


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


# What a probe's processing is doing, by the progress its stage starts at (cases.probes.PROBE_STAGE_PROGRESS).
PROBE_STAGE_TEXT = {
    faceengine.STAGE_DECODING: "Decoding the image",
    faceengine.STAGE_DETECTING: "Looking for faces",
    faceengine.STAGE_ENCODING: "Encoding the faces",
    STAGE_SAVING: "Saving the faces",
}


def probe_stage(probe: Probe) -> tuple[str, str] | None:
    """(stage, words) of a probe being processed, from its progress; None when it is not processing."""
    if probe.status != Probe.Status.PROCESSING:
        return None
    stage = max(
        (s for s, at in PROBE_STAGE_PROGRESS.items() if at <= probe.progress),
        key=lambda s: PROBE_STAGE_PROGRESS[s],
        default=faceengine.STAGE_DECODING,
    )
    return stage, PROBE_STAGE_TEXT[stage]


def probe_progress(probe: Probe) -> dict[str, Any]:
    """What a progress bar polls while a probe is processed: while it runs, `stage` and `status_text` say
    which step it is on (decoding, looking for faces, encoding the faces, saving)."""
    progress = {**_progress(probe), "faces": probe.faces.count()}
    stage = probe_stage(probe)
    if stage is not None:
        progress["stage"], progress["status_text"] = stage
    return progress


def search_progress(search: Search) -> dict[str, Any]:
    """What a progress bar polls while a search runs."""
    return _progress(search)


DERIVED_NOTICE = "Enhanced image: made by rfr from another probe with the operations listed; the original is unchanged."


ENVIRONMENT_LABELS = {"enhance_version": "rfr enhancement version", "opencv": "OpenCV", "numpy": "NumPy"}


def _when(value: str) -> str:
    moment = parse_datetime(value) if value else None
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else value


def derivation_view(probe: Probe) -> list[dict[str, Any]] | None:
    """How a derived probe was made, from the uploaded original to this probe, one entry per derivation (an
    enhanced image may itself be enhanced): None for an original upload."""
    if probe.parent_id is None or not probe.derivation:
        return None
    steps: list[dict[str, Any]] = []
    for item in probe_lineage(probe):
        record = item.derivation or {}
        if item.parent_id is None or not record:
            continue
        environment = record.get("environment") or {}
        steps.append(
            {
                "probe_id": item.pk,
                "sha256": item.sha256,
                "parent_id": record.get("parent_id", item.parent_id),
                "parent_sha256": record.get("parent_sha256", ""),
                "made_by": record.get("made_by", ""),
                "made_at": _when(record.get("made_at", "")),
                "operations": [operation_describe(step) for step in record.get("operations", [])],
                "environment": ", ".join(
                    f"{label} {environment[key]}" for key, label in ENVIRONMENT_LABELS.items() if key in environment
                ),
            }
        )
    return steps


def derivation_lines(probe: Probe) -> list[str]:
    """The chain in plain lines, for the PDF report and anywhere text is wanted."""
    lines: list[str] = []
    for step in derivation_view(probe) or []:
        lines.append(
            f"Probe #{step['probe_id']} (sha256 {step['sha256']}) made from probe #{step['parent_id']}"
            f" (sha256 {step['parent_sha256']}) by {step['made_by']} at {step['made_at']}"
            f" ({step['environment']}):"
        )
        lines += [f"{n}. {text}" for n, text in enumerate(step["operations"], start=1)]
    return lines
