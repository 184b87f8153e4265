"""The accuracy and fairness evidence of a model pack as people see it: the figures the accuracy page shows,
its curves drawn as images, the PDF annex for a DPIA or equality impact assessment, and the record of each
view and download (audited, like every view of evidence in rfr).

Curves are drawn server-side with matplotlib's Agg renderer (no display, no global pyplot state) and cached
as PNG files per run and attribute under DATA_DIR/cache/accuracy/, named by a hash of the curves, so a run's
images are drawn once. The figures come from search.accuracy, so the page, the annex, the thresholds page and a
candidate's score meaning never disagree.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from audit.actions import AuditAction
from audit.services import audit_event_record
from search.accuracy import OVERALL, evaluation_runs_latest_per_dataset, group_key_order, run_rates_at, run_summary
from search.models import EvaluationRun

Actor = AbstractBaseUser | AnonymousUser | None

# What the figures do and do not show: on the page and in the annex, in the same words.
NOTES: list[str] = [
    "A false match is a pair of images of two different people that scores at or above the threshold; the"
    " false-match rate (FMR) is the share of such pairs that do. A false non-match is a pair of images of the"
    " same person that scores below it (FNMR).",
    "Per-group rates compare pairs of different people within the same group (for example two women, or two"
    " people aged over 40): the pairs a search is most likely to confuse. A ratio of 10x means people in the"
    " highest group are ten times as likely to be falsely matched as people in the lowest, at the same threshold.",
    "The figures are measured on the named data sets, which are research data, not casework images: their"
    " people, image quality and labels (age, sex, race as the data set records them) differ from any force's"
    " galleries and probes. Small groups give uncertain rates; a rate of 0 means none of that group's pairs"
    " scored so high, not that a false match cannot happen.",
    "A data set without identities (for example UTKFace) gives false-match rates only; false non-match rates need"
    " several images of the same person.",
    "A score's estimated false-match rate says how often different people scored that high on the data set. It"
    " is not the probability that a candidate is the person searched for: every candidate is at most a possible"
    " match, for a trained person to assess.",
]

KIND_ORDER = (EvaluationRun.Kind.DEMOGRAPHICS, EvaluationRun.Kind.VERIFICATION, EvaluationRun.Kind.IDENTIFICATION)
ANNEX_COLUMNS = ("Attribute", "Group", "Images", "Failed to enrol", "Pairs", "FMR", "FNMR")
FLOORED_TEXT = " (the lowest group had no false match: its rate is taken as one false match in its pairs)."
GROUP_COLOURS = ["#1b5e20", "#0d47a1", "#b71c1c", "#e65100", "#4a148c", "#006064", "#3e2723", "#827717"]


# -- what the page shows -----------------------------------------------------------------------------------
def accuracy_overview(*, pack_key: str, threshold: float, normalisation: str = "raw") -> list[dict[str, Any]]:
    """Each stored run of the pack (newest per data set and kind): its summary, its rates at the threshold, the
    attributes it has per-group curves for, and the figures the run itself stored at its named thresholds."""
    overview = []
    runs = evaluation_runs_latest_per_dataset(pack_key=pack_key, normalisation=normalisation)
    # Demographic runs first (the fairness evidence), then verification and identification; newest first within.
    runs.sort(key=lambda run: KIND_ORDER.index(run.kind) if run.kind in KIND_ORDER else len(KIND_ORDER))
    for run in runs:
        at = run_rates_at(run, threshold)
        attributes = list(dict.fromkeys(g.attribute for g in at["groups"]))
        overview.append(
            {
                "run": run,
                "summary": run_summary(run),
                "at": at,
                "attributes": attributes,
                "by_attribute": [(a, [g for g in at["groups"] if g.attribute == a]) for a in attributes],
                "stored_thresholds": (run.figures or {}).get("thresholds") or {},
                "stored_ratios": (run.figures or {}).get("ratios") or {},
            }
        )
    return overview


# -- curves as images ---------------------------------------------------------------------------------------
def _curve_keys(run: EvaluationRun, attribute: str) -> list[str]:
    prefix = f"{attribute}="
    return sorted((k for k in (run.curves or {}) if k.startswith(prefix)), key=group_key_order)


def run_attributes(run: EvaluationRun) -> list[str]:
    keys = sorted((k for k in (run.curves or {}) if k != OVERALL and "=" in k), key=group_key_order)
    return list(dict.fromkeys(k.split("=", 1)[0] for k in keys))


def curves_have_fnmr(run: EvaluationRun, attribute: str) -> bool:
    """Whether the run measured false non-matches for this attribute's groups (then a DET plot is drawn)."""
    curves = run.curves or {}
    keys = [OVERALL, *_curve_keys(run, attribute)]
    return any(any(len(p) > 2 and p[2] is not None for p in curves.get(k) or []) for k in keys)


def _plot_png(run: EvaluationRun, attribute: str, threshold: float) -> bytes:
    curves = run.curves or {}
    keys = [OVERALL, *_curve_keys(run, attribute)]
    has_fnmr = curves_have_fnmr(run, attribute)
    figure = Figure(figsize=(10, 4.2) if has_fnmr else (6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if has_fnmr else 1, squeeze=False)[0]
    floor = 1e-6
    for index, key in enumerate(keys):
        points = sorted(curves.get(key) or [], key=lambda p: float(p[0]))
        label = "all pairs" if key == OVERALL else key.split("=", 1)[1]
        style: dict[str, Any] = (
            {"color": "black", "linestyle": "--", "linewidth": 1.5}
            if key == OVERALL
            else {"color": GROUP_COLOURS[(index - 1) % len(GROUP_COLOURS)], "linewidth": 1.5}
        )
        fmr_points = [(float(p[0]), max(float(p[1]), floor)) for p in points if p[1] is not None]
        if fmr_points:
            axes[0].plot([t for t, _ in fmr_points], [f for _, f in fmr_points], label=label, **style)
        if has_fnmr:
            det = [
                (max(float(p[1]), floor), max(float(p[2]), floor))
                for p in points
                if p[1] is not None and len(p) > 2 and p[2] is not None
            ]
            if det:
                axes[1].plot([f for f, _ in det], [n for _, n in det], label=label, **style)
    axes[0].set_yscale("log")
    axes[0].set_ylim(floor, 1.0)
    axes[0].set_xlabel("threshold (score)")
    axes[0].set_ylabel("false-match rate")
    axes[0].axvline(threshold, color="grey", linewidth=1)
    axes[0].set_title(f"False matches by {attribute}", fontsize=10)
    axes[0].grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    if has_fnmr:
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        axes[1].set_xlim(floor, 1.0)
        axes[1].set_ylim(1e-3, 1.0)
        axes[1].set_xlabel("false-match rate")
        axes[1].set_ylabel("false non-match rate")
        axes[1].set_title(f"DET by {attribute}", fontsize=10)
        axes[1].grid(True, which="major", alpha=0.3)
        axes[1].legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# matplotlib's text layout (its mathtext parser, for the log-scale tick labels) is not thread-safe, and a page
# asks for several curve images at once from a threaded server: draw one at a time.
_DRAWING = threading.Lock()
PLOT_VERSION = 1  # raise when the drawing changes, so cached images are drawn again


def _cache_dir() -> Path:
    return Path(settings.DATA_DIR) / "cache" / "accuracy"


def run_curve_png(*, run: EvaluationRun, attribute: str, threshold: float) -> bytes:
    """The PNG of the run's curves for one attribute (false-match rate against threshold, and a DET plot where
    the run measured false non-matches), drawn once and cached by the content of the curves."""
    if attribute not in run_attributes(run):
        raise KeyError(attribute)
    digest = hashlib.sha256(
        json.dumps([PLOT_VERSION, run.curves, attribute, round(threshold, 6)], sort_keys=True).encode()
    ).hexdigest()[:20]
    path = _cache_dir() / f"run-{run.pk}-{digest}.png"
    if path.exists():
        return path.read_bytes()
    with _DRAWING:
        png = _plot_png(run, attribute, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(png)
    os.replace(partial, path)
    return png


def curve_alt_text(run: EvaluationRun, attribute: str) -> str:
    groups = ", ".join(k.split("=", 1)[1] for k in _curve_keys(run, attribute))
    return (
        f"Curves of {run.dataset_name} by {attribute} ({groups}): false-match rate against threshold for each group"
        " and for all pairs (dashed), with the threshold in force marked; the table above gives the figures."
    )


# -- the audited records --------------------------------------------------------------------------------------
def accuracy_view_record(
    *,
    actor: Actor,
    pack_key: str,
    runs: list[EvaluationRun],
    threshold: float,
    page: str = "accuracy",
    request: HttpRequest | None = None,
) -> None:
    """Someone looked at a pack's accuracy and fairness figures (the page, or the thresholds page's preview)."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.ACCURACY_VIEWED,
            actor=actor,
            target_type="modelpack",
            target_id=pack_key,
            request=request,
            detail={
                "page": page,
                "pack_key": pack_key,
                "evaluation_runs": [r.pk for r in runs],
                "threshold": threshold,
            },
        )


def accuracy_annex_download_record(
    *,
    actor: Actor,
    pack_key: str,
    runs: list[EvaluationRun],
    threshold: float,
    sha256: str,
    request: HttpRequest | None = None,
) -> None:
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.ACCURACY_ANNEX_DOWNLOADED,
            actor=actor,
            target_type="modelpack",
            target_id=pack_key,
            request=request,
            detail={
                "pack_key": pack_key,
                "evaluation_runs": [r.pk for r in runs],
                "threshold": threshold,
                "annex_sha256": sha256,
            },
        )


# -- the PDF annex --------------------------------------------------------------------------------------------
def percent(value: float | None) -> str:
    """A rate as the pages and the annex show it: "0.30%", "<0.001%", "not measured"."""
    if value is None:
        return "not measured"
    if value == 0:
        return "0"
    pct = value * 100
    if pct < 0.001:
        return "<0.001%"
    return f"{pct:.3g}%"


def ratio_text(ratio: float | None) -> str:
    return "not defined (lowest group 0)" if ratio is None else f"{ratio:.1f}x"


def _t(value: Any) -> str:
    return escape(str(value))


def accuracy_annex_pdf(*, pack_key: str, threshold: float, threshold_source: str, generated_by: Actor) -> bytes:
    """The annex: for each stored evaluation of the pack, who ran it on what, overall and per-group rates at the
    operating threshold, the ratios, the curves, and what the figures do and do not show."""
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    note = ParagraphStyle("note", parent=small, leftIndent=4 * mm, bulletIndent=0, spaceAfter=2)
    overview = accuracy_overview(pack_key=pack_key, threshold=threshold)
    now = timezone.localtime()
    who = generated_by.get_username() if generated_by is not None and generated_by.is_authenticated else "rfr"
    story: list[Any] = [
        Paragraph("Accuracy and demographic performance: annex", styles["Title"]),
        Paragraph(
            f"Model pack <b>{_t(pack_key)}</b>. Operating threshold {threshold:.3f} ({_t(threshold_source)}). "
            f"Generated {_t(now.strftime('%Y-%m-%d %H:%M:%S %Z'))} by {_t(who)} from the evaluations stored in rfr.",
            small,
        ),
        Spacer(1, 3 * mm),
        Paragraph("What these figures do and do not show", styles["Heading2"]),
        *[Paragraph(_t(text), note, bulletText="•") for text in NOTES],
    ]
    if not overview:
        story.append(Paragraph("No evaluation of this pack is stored.", styles["Heading2"]))
    for item in overview:
        run: EvaluationRun = item["run"]
        summary = item["summary"]
        at = item["at"]
        overall = at["overall"]
        story += [
            Paragraph(_t(f"{summary['dataset']}: {summary['kind']}"), styles["Heading2"]),
            Paragraph(
                _t(
                    f"Run #{run.pk}, finished {timezone.localtime(summary['finished_at']).strftime('%Y-%m-%d %H:%M')}"
                    f" by {summary['run_by'] or 'not recorded'}; {summary['images'] or '?'} images; labels sha256"
                    f" {summary['labels_sha256'] or 'not recorded'}; scores {summary['normalisation']}."
                ),
                small,
            ),
            Paragraph(
                _t(
                    f"At {threshold:.3f}, all pairs: false-match rate {percent(overall.fmr if overall else None)},"
                    f" false non-match rate {percent(overall.fnmr if overall else None)}."
                ),
                small,
            ),
        ]
        rows: list[list[Any]] = [[Paragraph(f"<b>{h}</b>", small) for h in ANNEX_COLUMNS]]
        for group in at["groups"]:
            rows.append(
                [
                    Paragraph(_t(group.attribute), small),
                    Paragraph(_t(group.value), small),
                    Paragraph("" if group.n is None else f"{group.n:,}", small),
                    Paragraph("" if group.fte is None else f"{group.fte:,}", small),
                    Paragraph("" if group.pairs is None else f"{group.pairs:,}", small),
                    Paragraph(percent(group.rates.fmr if group.rates else None), small),
                    Paragraph(percent(group.rates.fnmr if group.rates else None), small),
                ]
            )
        table = Table(rows, colWidths=[22 * mm, 30 * mm, 18 * mm, 22 * mm, 24 * mm, 27 * mm, 27 * mm], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                ]
            )
        )
        story.append(table)
        for attribute, ratio in at["ratios"].items():
            story.append(
                Paragraph(
                    _t(
                        f"{attribute}: highest {ratio['highest']} {percent(ratio['highest_fmr'])}, lowest"
                        f" {ratio['lowest']} {percent(ratio['lowest_fmr'])}, ratio {ratio_text(ratio['ratio'])}"
                        + (FLOORED_TEXT if ratio["floored"] else ".")
                    ),
                    small,
                )
            )
        for attribute in item["attributes"]:
            png = run_curve_png(run=run, attribute=attribute, threshold=threshold)
            # Two panels (with a DET plot) are 10 x 4.2 inches, one panel 6.4 x 4.2: keep the aspect ratio.
            width = 170 * mm if curves_have_fnmr(run, attribute) else 110 * mm
            figure = Image(io.BytesIO(png), width=width, height=width * 4.2 / (10 if width > 150 * mm else 6.4))
            figure.hAlign = "LEFT"
            story.append(KeepTogether([Spacer(1, 2 * mm), figure]))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            15 * mm, 8 * mm, f"rfr accuracy annex - pack {pack_key} - research data, not casework - page {doc.page}"
        )
        canvas.restoreState()

    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"rfr accuracy annex {pack_key}",
        author="rfr",
    ).build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
