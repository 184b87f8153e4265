"""The per-search disclosure report (PDF), fit for an evidence bundle, and the record of each download.

What it holds, in order: the case and the probe beside the probe image with the searched face boxed; how an
enhanced (derived) probe was made, from the uploaded original (cases.presenters.derivation_view); the video
the probe came from, where it did (`video_source_rows`); the search's settings (pack, galleries, threshold and
its source, score normalisation, the evaluation its scores are read against); the candidate list, compact;
then, for every reviewed candidate, the probe face and the candidate's face side by side with the feature
checklist of each decision, its rationale, reviewer and time. Only the decisions the person generating the
report may read are printed (cases.review.decisions_visible_to): a first assessment awaiting its independent
second review is withheld from everyone but its author.

Every page carries the intelligence-only wording and "Page x of y" (cases.report_layout.numbered_canvas); a
possible match is never worded as an identification; no word, reference or hash is split across lines.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

import faceengine
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.features import feature_checklist_rows
from cases.models import POSSIBLE_MATCH_WORDING, Candidate, Decision, Search
from cases.presenters import (
    DERIVED_NOTICE,
    MANUAL_LANDMARKS_WARNING,
    candidate_label,
    candidate_score_meaning,
    candidate_subject,
    derivation_view,
    face_origin_text,
    search_evidence_text,
)
from cases.report_layout import fitted, numbered_canvas, png_image, text
from cases.review import WITHHELD_TEXT, candidate_aligned_crop, decisions_visible_to
from cases.searches import candidates_of_search
from cases.video_report import VideoReportSection, search_video_section
from rfr.engine import image_limits
from search.accuracy import NOT_A_PROBABILITY

PROBE_PREVIEW_MAX_SIDE = 900
# A fact longer than this is laid out as its own heading and paragraphs below the table, not in a table cell:
# a cell cannot break across pages, so a long justification in one made the report fail (rfr/limits.py
# allows 4,000 characters).
LONG_FACT_CHARS = 300

# A4 less 15 mm margins each side; the footer sits in the bottom margin.
MARGIN_MM = 15.0
WIDTH_MM = 210.0 - 2 * MARGIN_MM
FOOTER_MM = 8.0
# Cell padding, left and right (points): narrow columns (rank, score) need their width for the text.
PAD = 3.0
# The side-by-side faces of a reviewed candidate: the aligned crops, each this size.
FACE_MM = 34.0

_GRID = [
    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), PAD),
    ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
]
_PLAIN = [
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
    ("TOPPADDING", (0, 0), (-1, -1), 0.8),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 0.8),
]


class _Styles:
    def __init__(self) -> None:
        sheet = getSampleStyleSheet()
        self.small = ParagraphStyle("small", parent=sheet["BodyText"], fontSize=8, leading=10, spaceBefore=0)
        self.tiny = ParagraphStyle("tiny", parent=self.small, fontSize=7, leading=8.5)
        self.body = ParagraphStyle("body", parent=self.small, leftIndent=4 * mm, spaceAfter=2)
        self.title = ParagraphStyle("title", parent=sheet["Title"], fontSize=15, leading=18, spaceAfter=3)
        self.h2 = ParagraphStyle("h2", parent=sheet["Heading2"], fontSize=11, leading=13, spaceBefore=6, spaceAfter=3)
        self.h3 = ParagraphStyle("h3", parent=sheet["Heading3"], fontSize=9, leading=11, spaceBefore=4, spaceAfter=2)
        self.warning = ParagraphStyle(
            "warning",
            parent=sheet["BodyText"],
            backColor=colors.HexColor("#fff4ce"),
            borderPadding=3,
            fontSize=9,
            leading=11,
            spaceAfter=6,
        )


def _when(value: Any) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "not recorded"


def _paragraphs(value: Any, style: ParagraphStyle) -> list[Paragraph]:
    """Free text as paragraphs that wrap and break across pages: one per line the author wrote. A run of
    characters with no space (a pasted hash, a long URL) is split (splitLongWords) rather than overflow."""
    lines = [line.strip() for line in str(value).splitlines()]
    return [Paragraph(text(line), style) for line in lines if line] or [Paragraph("", style)]


def _is_long(value: Any) -> bool:
    return len(str(value)) > LONG_FACT_CHARS


def _long_facts(rows: list[tuple[str, Any]], s: _Styles) -> list[Any]:
    """The long facts (free text) of `rows`, each under its label, as paragraphs that can run across pages."""
    flowables: list[Any] = []
    for k, v in rows:
        if _is_long(v):
            flowables += [Spacer(1, 1.5 * mm), Paragraph(f"<b>{text(k)}</b>", s.small), *_paragraphs(v, s.body)]
    return flowables


def _facts(
    rows: list[tuple[str, Any]], s: _Styles, *, label_mm: float, value_mm: float, with_long: bool = True
) -> list[Any]:
    """Short facts as a label/value table; long ones (free text) after it unless `with_long` is off (the
    caller then places `_long_facts` where a page break may fall)."""
    short = [(k, v) for k, v in rows if not _is_long(v)]
    flowables: list[Any] = []
    if short:
        table = Table(
            [
                [fitted(k, s.small, label_mm * mm - PAD, bold=True), fitted(v, s.small, value_mm * mm - PAD)]
                for k, v in short
            ],
            colWidths=[label_mm * mm, value_mm * mm],
        )
        table.setStyle(TableStyle(_PLAIN))
        flowables.append(table)
    return flowables + (_long_facts(rows, s) if with_long else [])


def _probe_with_box(search: Search) -> np.ndarray | None:
    """The probe image with the searched face boxed (and hand-placed landmarks dotted), at most 900 px."""
    probe = search.face.probe
    try:
        with probe.original.open("rb") as handle:
            image = faceengine.decode_image(handle.read(), image_limits())
    except (FileNotFoundError, faceengine.ImageRejected):
        return None
    scale = min(1.0, PROBE_PREVIEW_MAX_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y, w, h = (v * scale for v in search.face.box)
    thickness = max(2, int(max(image.shape[:2]) / 250))
    cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), (0, 200, 0), thickness)
    if search.face.manually_marked:
        # The five points as a person placed them, so the report shows what the face was made from.
        radius = max(2, int(image.shape[1] / 250))
        for px, py in search.face.landmarks:
            cv2.circle(image, (int(px * scale), int(py * scale)), radius, (0, 0, 220), -1)
    return image


def _probe_crop(search: Search) -> np.ndarray | None:
    face = search.face
    if not face.aligned_crop:
        return None
    try:
        with face.aligned_crop.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def video_source_rows(search: Search) -> list[tuple[str, str]]:
    """The video a probe was taken from, as report facts (file, sha256, time codes, frames used); none for a
    probe that is a still image (cases.video_report)."""
    section = search_video_section(search)
    return section.lines() if section is not None else []


def _video_shot_strip(section: VideoReportSection, s: Any) -> list[Any]:
    """The best-shot crops fused into a track search's template, each captioned with its time code."""
    cells: list[Any] = []
    for shot in section.shots:
        crop = cv2.imdecode(np.frombuffer(shot.crop_jpeg, np.uint8), cv2.IMREAD_COLOR) if shot.crop_jpeg else None
        image = (
            png_image(crop, max_width_mm=20, max_height_mm=20) if crop is not None else Paragraph("no crop", s.small)
        )
        cells.append([image, Paragraph(text(shot.time_code), s.small)])
    if not cells:
        return []
    per_row = 8
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    rows[-1] += [""] * (per_row - len(rows[-1]))
    return [Table(rows, colWidths=[WIDTH_MM / per_row * mm] * per_row, hAlign="LEFT")]


def _normalisation_text(search: Search) -> str:
    value = search.score_normalisation or "raw"
    if value == "raw":
        return "none (raw scores)"
    kind, _, key = value.partition(":")
    return f"normalised against score cohort #{key}" if kind == "cohort" else value


def _meaning_text(candidate: Candidate) -> str:
    """The score's meaning without the score itself and the not-a-probability caveat, both printed once."""
    meaning = candidate_score_meaning(candidate).text
    meaning = meaning.split(": ", 1)[-1]
    return meaning.replace(f" ({NOT_A_PROBABILITY})", "")


def _decision_heading(decision: Decision) -> str:
    return (
        f"{decision.get_stage_display()}: {decision.get_decision_display()},"
        f" by {decision.reviewer.get_username()} at {_when(decision.created_at)}"
    )


def _checklist(decisions: list[Decision], s: _Styles, width_mm: float) -> Table:
    """The feature checklist of each decision side by side: one column per reviewer."""
    label_mm = 32.0
    column_mm = (width_mm - label_mm) / len(decisions)
    header = [fitted("Feature", s.tiny, label_mm * mm - 2 * PAD, bold=True)] + [
        fitted(f"{d.get_stage_display()} ({d.reviewer.get_username()})", s.tiny, column_mm * mm - 2 * PAD, bold=True)
        for d in decisions
    ]
    per_decision = [feature_checklist_rows(d.features or {}) for d in decisions]
    rows: list[list[Any]] = [header]
    for index, (label, _assessment) in enumerate(per_decision[0]):
        rows.append(
            [Paragraph(text(label), s.tiny)] + [Paragraph(text(rows_[index][1]), s.tiny) for rows_ in per_decision]
        )
    table = Table(rows, colWidths=[label_mm * mm] + [column_mm * mm] * len(decisions), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                *_GRID,
                ("TOPPADDING", (0, 0), (-1, -1), 0.6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0.6),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ]
        )
    )
    return table


def _reviewed_candidate(
    candidate: Candidate,
    decisions: list[Decision],
    withheld: int,
    probe_crop: np.ndarray | None,
    search: Search,
    s: _Styles,
    lead: list[Any],
) -> list[Any]:
    """One reviewed candidate: heading, the two faces side by side with the checklists, then each decision's
    reviewer, time and rationale (paragraphs, which may run onto the next page)."""
    heading = Paragraph(
        f"<b>Rank {candidate.rank}</b>: {text(candidate_subject(candidate))} ({text(candidate.gallery_name)}),"
        f" score {candidate.score:.3f}. Assessment: {text(candidate_label(candidate))}.",
        s.small,
    )
    crop = None if candidate.subject_removed else candidate_aligned_crop(candidate=candidate)
    missing = Paragraph("Gallery image no longer held.", s.tiny)
    faces = [
        [
            png_image(probe_crop, max_width_mm=FACE_MM, max_height_mm=FACE_MM) if probe_crop is not None else missing,
            png_image(crop, max_width_mm=FACE_MM, max_height_mm=FACE_MM) if crop is not None else missing,
        ],
        [
            Paragraph(f"Probe, face {search.face.index}", s.tiny),
            fitted(f"Candidate, rank {candidate.rank}", s.tiny, FACE_MM * mm),
        ],
    ]
    faces_table = Table(faces, colWidths=[(FACE_MM + 2) * mm] * 2)
    faces_table.setStyle(TableStyle(_PLAIN))
    right_mm = WIDTH_MM - 2 * (FACE_MM + 2) - 2
    right: list[Any] = []
    if decisions:
        right.append(_checklist(decisions, s, right_mm))
    if withheld:  # the second reviewer must not read the first assessment before giving their own
        right.append(Paragraph(text(WITHHELD_TEXT), s.tiny))
    block = Table([[faces_table, right]], colWidths=[2 * (FACE_MM + 2) * mm + 2 * mm, right_mm * mm])
    block.setStyle(TableStyle(_PLAIN))
    # `lead` (the section heading, before the first candidate) stays with it rather than end a page alone.
    flowables: list[Any] = [KeepTogether([*lead, heading, Spacer(1, 1 * mm), block])]
    for decision in decisions:
        flowables += [
            Spacer(1, 1 * mm),
            Paragraph(f"<b>{text(_decision_heading(decision))}</b>. Rationale:", s.small),
            *_paragraphs(decision.rationale, s.body),
        ]
    flowables.append(Spacer(1, 3 * mm))
    return flowables


def _candidate_table(candidates: list[Candidate], s: _Styles) -> Table:
    widths_mm = [11.0, 12.0, 30.0, 27.0, 50.0, WIDTH_MM - 130.0]
    headers = ["Rank", "Score", "Subject", "Gallery", "Assessment", "How often different people score this high"]
    rows: list[list[Any]] = [
        [fitted(h, s.tiny, w * mm - 2 * PAD, bold=True) for h, w in zip(headers, widths_mm, strict=True)]
    ]
    for candidate in candidates:
        rows.append(
            [
                fitted(candidate.rank, s.tiny, widths_mm[0] * mm - 2 * PAD),
                fitted(f"{candidate.score:.3f}", s.tiny, widths_mm[1] * mm - 2 * PAD),
                fitted(candidate_subject(candidate), s.tiny, widths_mm[2] * mm - 2 * PAD),
                fitted(candidate.gallery_name, s.tiny, widths_mm[3] * mm - 2 * PAD),
                Paragraph(text(candidate_label(candidate)), s.tiny),
                Paragraph(text(_meaning_text(candidate)), s.tiny),
            ]
        )
    table = Table(rows, colWidths=[w * mm for w in widths_mm], repeatRows=1)
    table.setStyle(TableStyle([*_GRID, ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))]))
    return table


def search_report_pdf(*, search: Search, generated_by: AbstractBaseUser) -> bytes:
    s = _Styles()
    face = search.face
    probe = face.probe
    case = search.case
    now = timezone.localtime()
    story: list[Any] = [
        Paragraph(f"Search report: case {text(case.reference)}, search #{search.pk}", s.title),
        Paragraph(
            f"Every candidate in this report is at most a <b>{text(POSSIBLE_MATCH_WORDING)}</b>. "
            "Any possible match needs corroboration by other evidence before action is taken.",
            s.warning,
        ),
    ]

    # Case and probe facts on the left, the probe image with the searched face boxed on the right: the
    # facts are short, so side by side they fill page 1 instead of pushing the image to page 2.
    image_mm = 72.0
    label_mm, value_mm = 27.0, WIDTH_MM - image_mm - 27.0 - 3
    case_rows = [
        ("Case reference", case.reference),
        ("Title", case.title),
        ("Purpose", case.get_purpose_display()),
        ("Legal basis", case.legal_basis),
        ("Status", case.get_status_display()),
    ]
    probe_rows = [
        ("Probe", f"#{probe.pk} {probe.original_name}"),
        ("Source", probe.get_source_display()),
        ("Description", probe.description or "none"),
        ("Captured", _when(probe.captured_at)),
        ("Uploaded", f"{_when(probe.uploaded_at)} by {probe.uploaded_by.get_username()}"),
        ("Lawfully held", "stated by the uploader" if probe.lawfully_held else "NOT stated"),
        ("SHA-256 (enhanced)" if probe.parent_id else "SHA-256", probe.sha256),
        ("Size", f"{probe.width} x {probe.height} pixels"),
        ("Searched face", f"face {face.index}, boxed in green"),
        ("How it was found", face_origin_text(face) or "found by the detector"),
        ("Quality warnings", ", ".join(face.warnings) or "none"),
    ]
    left: list[Any] = [
        Paragraph("Case", s.h2),
        *_facts(case_rows, s, label_mm=label_mm, value_mm=value_mm, with_long=False),
        Paragraph("Probe image", s.h2),
        *_facts(probe_rows, s, label_mm=label_mm, value_mm=value_mm, with_long=False),
    ]
    preview = _probe_with_box(search)
    right: list[Any] = (
        [Spacer(1, 3 * mm), png_image(preview, max_width_mm=image_mm, max_height_mm=95)]
        if preview is not None
        else [Paragraph("The probe image is no longer held.", s.small)]
    )
    right.append(Paragraph(f"The searched face (face {face.index}) is boxed in green.", s.tiny))
    top = Table([[left, right]], colWidths=[(WIDTH_MM - image_mm) * mm, image_mm * mm])
    top.setStyle(TableStyle(_PLAIN))
    # A table cell cannot break across pages, so free text at its longest follows the block, where it can.
    story += [top, *_long_facts(case_rows + probe_rows, s)]
    if face.manually_marked:
        story.append(
            Paragraph(
                f"<b>Manually marked face</b> ({text(face_origin_text(face))}):"
                f" {text(', '.join(f'({x:g}, {y:g})' for x, y in face.landmarks))}."
                f" {text(MANUAL_LANDMARKS_WARNING)}",
                s.warning,
            )
        )

    chain = derivation_view(probe)
    if chain:
        story += [Paragraph("How the enhanced probe image was made", s.h3), Paragraph(text(DERIVED_NOTICE), s.small)]
        for step in chain:
            story += _facts(
                [
                    ("Probe", f"#{step['probe_id']}, sha256 {step['sha256']}"),
                    ("Made from", f"probe #{step['parent_id']}, sha256 {step['parent_sha256']}"),
                    ("By, at", f"{step['made_by']}, {step['made_at']}"),
                    ("Software", step["environment"] or "not recorded"),
                ],
                s,
                label_mm=25,
                value_mm=WIDTH_MM - 25,
            )
            story += [Paragraph(text(f"{n}. {operation}"), s.body) for n, operation in enumerate(step["operations"], 1)]

    video_section = search_video_section(search)
    if video_section is not None:
        video = video_section.lines()
        story += [Paragraph("Video source", s.h3), *_facts(video, s, label_mm=30, value_mm=WIDTH_MM - 30)]
        if video_section.kind == "track":
            story += _video_shot_strip(video_section, s)

    # The search's settings in two pairs of columns, so they take half the height.
    settings_rows = [
        ("Requested", f"{_when(search.created_at)} by {search.requested_by.get_username()}"),
        ("Ran", f"{_when(search.started_at)} to {_when(search.finished_at)}"),
        ("Model pack", search.pack_key),
        ("Galleries", ", ".join(g["name"] for g in search.galleries)),
        ("Threshold", f"{search.threshold:.3f} ({search.get_threshold_source_display()})"),
        ("List length asked", search.top_k),
        ("Score normalisation", _normalisation_text(search)),
        ("Scores read against", search_evidence_text(search)),
    ]
    pair_label, pair_value = 33.0, WIDTH_MM / 2 - 33.0
    grid = []
    for i in range(0, len(settings_rows), 2):
        row: list[Any] = []
        for k, v in settings_rows[i : i + 2]:
            row += [fitted(k, s.small, pair_label * mm - PAD, bold=True), fitted(v, s.small, pair_value * mm - PAD)]
        grid.append(row)
    settings_table = Table(grid, colWidths=[pair_label * mm, pair_value * mm] * 2)
    settings_table.setStyle(TableStyle(_PLAIN))
    story += [Paragraph("Search", s.h2), settings_table]
    story += _facts(
        [
            ("Justification", search.justification),
            *([("Reason to search a very small face", search.small_face_reason)] if search.small_face_reason else []),
        ],
        s,
        label_mm=26,
        value_mm=WIDTH_MM - 26,
    )

    candidates = list(candidates_of_search(search=search))
    story.append(Paragraph(f"Candidates ({len(candidates)})", s.h2))
    if candidates:
        story += [
            Paragraph(
                "The last column says how often people who are not the same person scored as high in the stored"
                f" evaluation this search relied on; it is {text(NOT_A_PROBABILITY)}.",
                s.tiny,
            ),
            Spacer(1, 1 * mm),
            _candidate_table(candidates, s),
        ]
    else:
        story.append(Paragraph("No gallery face scored at or above the threshold.", s.small))

    reviewed = []
    for candidate in candidates:
        decisions, withheld = decisions_visible_to(candidate=candidate, viewer=generated_by)
        if decisions or withheld:
            reviewed.append((candidate, decisions, withheld))
    if reviewed:
        probe_crop = _probe_crop(search)
        lead: list[Any] = [Paragraph("Reviewed candidates: faces, feature checklists and decisions", s.h2)]
        for candidate, decisions, withheld in reviewed:
            story += _reviewed_candidate(candidate, decisions, withheld, probe_crop, search, s, lead)
            lead = []

    story.append(
        Paragraph(
            f"Report generated {text(now.strftime('%Y-%m-%d %H:%M:%S %Z'))} by {text(generated_by.get_username())}.",
            s.small,
        )
    )

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN_MM * mm,
        rightMargin=MARGIN_MM * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=f"rfr search report {case.reference} #{search.pk}",
        author="rfr",
        subject=POSSIBLE_MATCH_WORDING,
    )
    footer = f"rfr case {case.reference}, search #{search.pk}: {POSSIBLE_MATCH_WORDING}"
    document.build(
        story, canvasmaker=numbered_canvas(footer, left_mm=MARGIN_MM, right_mm=MARGIN_MM, bottom_mm=FOOTER_MM)
    )
    return buffer.getvalue()


def search_report_download_record(
    *, search: Search, user: AbstractBaseUser, sha256: str, request: HttpRequest | None = None
) -> None:
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.SEARCH_REPORT_DOWNLOADED,
            actor=user,
            target=search,
            case_id=search.case_id,
            request=request,
            detail={"report_sha256": sha256},
        )
