"""The per-search disclosure report (PDF): probe, chosen face, settings, candidates, decisions and reviewers;
and the record of each download. A search from an enhanced (derived) probe carries the whole chain of
operations that made it, from the uploaded original (cases.presenters.derivation_lines).

Every page carries the intelligence-only wording; a possible match is never worded as an identification.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

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
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

import faceengine
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.models import POSSIBLE_MATCH_WORDING, Search
from cases.presenters import (
    DERIVED_NOTICE,
    MANUAL_LANDMARKS_WARNING,
    candidate_label,
    candidate_score_meaning,
    candidate_subject,
    derivation_lines,
    face_origin_text,
    search_evidence_text,
)
from cases.review import WITHHELD_TEXT, decisions_visible_to
from cases.searches import candidates_of_search
from rfr.engine import image_limits

PROBE_PREVIEW_MAX_SIDE = 900
# A fact longer than this is laid out as its own heading and paragraphs below the table, not in a table cell:
# a cell cannot break across pages, so a long justification in one made the report fail (rfr/limits.py
# allows 4,000 characters).
LONG_FACT_CHARS = 300


def _png_flowable(image_bgr: np.ndarray, width_mm: float) -> Image:
    ok, buffer = cv2.imencode(".png", image_bgr)
    assert ok
    height, width = image_bgr.shape[:2]
    return Image(io.BytesIO(buffer.tobytes()), width=width_mm * mm, height=width_mm * mm * height / width)


def _probe_with_box(search: Search) -> np.ndarray | None:
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
    cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), (0, 200, 0), max(2, int(image.shape[1] / 300)))
    if search.face.manually_marked:
        # The five points as a person placed them, so the report shows what the face was made from.
        radius = max(2, int(image.shape[1] / 250))
        for px, py in search.face.landmarks:
            cv2.circle(image, (int(px * scale), int(py * scale)), radius, (0, 0, 220), -1)
    return image


def _text(value: Any) -> str:
    return escape(str(value))


def _paragraphs(value: Any, style: ParagraphStyle) -> list[Paragraph]:
    """Free text as paragraphs that wrap and break across pages: one per line the author wrote. A run of
    characters with no space (a pasted hash, a long URL) is split (splitLongWords) rather than overflow."""
    lines = [line.strip() for line in str(value).splitlines()]
    return [Paragraph(_text(line), style) for line in lines if line] or [Paragraph("", style)]


def search_report_pdf(*, search: Search, generated_by: AbstractBaseUser) -> bytes:
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    body = ParagraphStyle("body", parent=small, leftIndent=4 * mm, spaceAfter=2)
    warning = ParagraphStyle(
        "warning",
        parent=styles["BodyText"],
        backColor=colors.HexColor("#fff4ce"),
        borderPadding=4,
        fontSize=10,
    )
    face = search.face
    probe = face.probe
    case = search.case
    now = timezone.localtime()
    story: list[Any] = [
        Paragraph(f"rfr search report: case {_text(case.reference)}, search #{search.pk}", styles["Title"]),
        Paragraph(
            f"Every candidate in this report is at most a <b>{_text(POSSIBLE_MATCH_WORDING)}</b>. "
            "Any possible match needs corroboration by other evidence before action is taken.",
            warning,
        ),
        Spacer(1, 4 * mm),
    ]

    def facts(rows: list[tuple[str, Any]]) -> list[Any]:
        """Short facts in a two-column table; long ones (free text) after it, each under its own label, as
        paragraphs that can run across pages."""
        short = [(k, v) for k, v in rows if len(str(v)) <= LONG_FACT_CHARS]
        long = [(k, v) for k, v in rows if len(str(v)) > LONG_FACT_CHARS]
        table = Table(
            [[Paragraph(f"<b>{_text(k)}</b>", small), Paragraph(_text(v), small)] for k, v in short],
            colWidths=[45 * mm, 125 * mm],
        )
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
        flowables: list[Any] = [table] if short else []
        for k, v in long:
            flowables += [Spacer(1, 1.5 * mm), Paragraph(f"<b>{_text(k)}</b>", small), *_paragraphs(v, body)]
        return flowables

    def when(value: Any) -> str:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "not recorded"

    story += [
        Paragraph("Case", styles["Heading2"]),
        *facts(
            [
                ("Reference", case.reference),
                ("Title", case.title),
                ("Purpose", case.get_purpose_display()),
                ("Legal basis", case.legal_basis),
                ("Status", case.get_status_display()),
            ]
        ),
        Paragraph("Probe image", styles["Heading2"]),
        *facts(
            [
                ("Probe", f"#{probe.pk} {probe.original_name}"),
                ("Source", probe.get_source_display()),
                ("Description", probe.description or "none"),
                ("Captured", when(probe.captured_at)),
                ("Uploaded", f"{when(probe.uploaded_at)} by {probe.uploaded_by.get_username()}"),
                ("Lawfully held", "stated by the uploader" if probe.lawfully_held else "NOT stated"),
                ("SHA-256 of enhanced image" if probe.parent_id else "SHA-256 of original", probe.sha256),
                ("Size", f"{probe.width} x {probe.height} pixels"),
            ]
        ),
    ]
    chain = derivation_lines(probe)
    if chain:
        story += [
            Paragraph("How the enhanced probe image was made", styles["Heading3"]),
            Paragraph(_text(DERIVED_NOTICE), small),
            *_paragraphs("\n".join(chain), body),
        ]
    preview = _probe_with_box(search)
    crop_bytes = face.aligned_crop.open("rb").read() if face.aligned_crop else b""
    images: list[Any] = []
    if preview is not None:
        images.append(_png_flowable(preview, 110))
    if crop_bytes:
        crop = cv2.imdecode(np.frombuffer(crop_bytes, np.uint8), cv2.IMREAD_COLOR)
        if crop is not None:
            images.append(_png_flowable(crop, 30))
    if images:
        story += [
            Spacer(1, 2 * mm),
            Table([images]),
            Paragraph(
                f"Chosen face: face {face.index} (boxed"
                + ("; the five landmarks placed by hand shown as red dots)." if face.manually_marked else ")."),
                small,
            ),
        ]
    if face.manually_marked:
        story.append(
            Paragraph(
                f"<b>Manually marked face</b> ({_text(face_origin_text(face))}):"
                f" {_text(', '.join(f'({x:g}, {y:g})' for x, y in face.landmarks))}."
                f" {_text(MANUAL_LANDMARKS_WARNING)}",
                warning,
            )
        )
    story += [
        Paragraph("Search", styles["Heading2"]),
        *facts(
            [
                ("Requested", f"{when(search.created_at)} by {search.requested_by.get_username()}"),
                ("Justification", search.justification),
                ("Reason to search a very small face", search.small_face_reason or "not applicable"),
                ("Face quality warnings", ", ".join(face.warnings) or "none"),
                ("How the face was found", face_origin_text(face) or "found by the detector"),
                ("Galleries", ", ".join(g["name"] for g in search.galleries)),
                ("Candidates asked for", search.top_k),
                ("Threshold", f"{search.threshold:.3f} ({search.get_threshold_source_display()})"),
                ("Model pack", search.pack_key),
                ("Scores read against", search_evidence_text(search)),
                ("Ran", f"{when(search.started_at)} to {when(search.finished_at)}"),
            ]
        ),
        Paragraph("Candidates", styles["Heading2"]),
    ]
    candidates = list(candidates_of_search(search=search))
    rows: list[list[Any]] = [
        [Paragraph(f"<b>{h}</b>", small) for h in ("Rank", "Score", "Subject", "Gallery", "Assessment", "Decisions")]
    ]
    meanings: list[Any] = [
        Paragraph("What the scores mean", styles["Heading3"]),
        Paragraph(
            "How often people who are not the same person scored as high in the stored evaluation this search"
            " relied on; never the probability that a candidate is the person searched for.",
            small,
        ),
    ]
    # Rationales may be long (rfr/limits.py), so the table names each decision and the rationales follow it
    # as paragraphs that can run across pages.
    rationales: list[Any] = []
    for candidate in candidates:
        decisions, withheld = decisions_visible_to(candidate=candidate, viewer=generated_by)
        decided = "<br/>".join(
            f"{_text(d.get_stage_display())}: {_text(d.get_decision_display())}"
            f" by {_text(d.reviewer.get_username())} at {_text(when(d.created_at))}."
            " Rationale below."
            for d in decisions
        )
        for d in decisions:
            rationales += [
                Paragraph(
                    f"<b>Rank {candidate.rank} ({_text(candidate.subject_ref)}), {_text(d.get_stage_display())}:"
                    f" {_text(d.get_decision_display())} by {_text(d.reviewer.get_username())}</b>",
                    small,
                ),
                *_paragraphs(d.rationale, body),
            ]
        meanings.append(Paragraph(_text(f"Rank {candidate.rank}: {candidate_score_meaning(candidate).text}."), small))
        if withheld:  # the second reviewer must not read the first assessment before giving their own
            decided = "<br/>".join(filter(None, [decided, _text(WITHHELD_TEXT)]))
        rows.append(
            [
                Paragraph(str(candidate.rank), small),
                Paragraph(f"{candidate.score:.3f}", small),
                Paragraph(_text(candidate_subject(candidate)), small),
                Paragraph(_text(candidate.gallery_name), small),
                Paragraph(_text(candidate_label(candidate)), small),
                Paragraph(decided or "not reviewed", small),
            ]
        )
    table = Table(rows, colWidths=[11 * mm, 14 * mm, 25 * mm, 25 * mm, 45 * mm, 52 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ]
        )
    )
    story.append(table if candidates else Paragraph("No gallery face scored at or above the threshold.", small))
    if candidates:
        story += meanings
    if rationales:
        story += [Paragraph("Rationales", styles["Heading2"]), *rationales]
    story += [
        Spacer(1, 4 * mm),
        Paragraph(
            f"Report generated {_text(now.strftime('%Y-%m-%d %H:%M:%S %Z'))} by {_text(generated_by.get_username())}.",
            small,
        ),
    ]

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            15 * mm,
            8 * mm,
            f"rfr case {case.reference} search #{search.pk} - {POSSIBLE_MATCH_WORDING} - page {doc.page}",
        )
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"rfr search report {case.reference} #{search.pk}",
        author="rfr",
        subject=POSSIBLE_MATCH_WORDING,
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)
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
