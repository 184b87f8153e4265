"""Layout pieces of the PDF disclosure report that know nothing of cases: text that never wraps mid-word,
images sized to a box, and a canvas that numbers pages "Page x of y" with a footer on every page.

A table cell narrower than a word makes reportlab break the word (a "Ran k" header, a subject reference cut
in two), which reads as two words in an evidence bundle. `fitted` shrinks a cell's type until its longest
word fits instead; references and hashes are never split.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

import cv2
import numpy as np
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, Paragraph
from reportlab.platypus.paragraph import ParagraphStyle

# Below this size print is hard to read; a word still too wide at it is left to reportlab (it never happens
# for the references and hashes rfr stores: 64 characters fit a 60 mm cell at this size).
MIN_FONT_SIZE = 5.5


def text(value: Any) -> str:
    """A value as Paragraph markup: escaped, so a reference with "<" or "&" prints as written."""
    return escape(str(value))


def fitted(value: Any, style: ParagraphStyle, width: float, *, bold: bool = False) -> Paragraph:
    """`value` in a cell `width` points wide (padding excluded), its type shrunk until its longest word fits
    on one line, so no word is ever split across lines."""
    font = style.fontName if not bold else "Helvetica-Bold"
    words = str(value).split() or [""]
    size = style.fontSize
    while size > MIN_FONT_SIZE and max(stringWidth(w, font, size) for w in words) > width:
        size -= 0.25
    markup = f"<b>{text(value)}</b>" if bold else text(value)
    if size == style.fontSize:
        return Paragraph(markup, style)
    smaller = ParagraphStyle(f"{style.name}-{size}", parent=style, fontSize=size, leading=size * 1.2)
    return Paragraph(markup, smaller)


def png_image(image_bgr: np.ndarray, *, max_width_mm: float, max_height_mm: float) -> Image:
    """An image flowable as large as fits the box, keeping its proportions (PNG, lossless)."""
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # cv2 encodes any 8-bit BGR array; a failure means a bug upstream
        raise ValueError("The image could not be encoded as PNG.")
    height, width = image_bgr.shape[:2]
    scale = min(max_width_mm / width, max_height_mm / height)
    return Image(io.BytesIO(buffer.tobytes()), width=width * scale * mm, height=height * scale * mm)


def numbered_canvas(footer: str, *, left_mm: float, right_mm: float, bottom_mm: float) -> type[Canvas]:
    """A canvas class for `doc.build(canvasmaker=...)` that draws `footer` and "Page x of y" on every page.

    The total is known only once every page is laid out, so each page's state is kept and the footers are
    drawn when the document is saved (reportlab's documented two-pass pattern)."""

    class _NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # reportlab names it so
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._footer(number, total)
                super().showPage()
            super().save()

        def _footer(self, number: int, total: int) -> None:
            page_width = self._pagesize[0]
            self.saveState()
            self.setStrokeColorRGB(0.6, 0.6, 0.6)
            self.setLineWidth(0.5)
            self.line(left_mm * mm, (bottom_mm + 3.5) * mm, page_width - right_mm * mm, (bottom_mm + 3.5) * mm)
            self.setFont("Helvetica", 7)
            self.drawString(left_mm * mm, bottom_mm * mm, footer)
            self.setFont("Helvetica-Bold", 7)
            self.drawRightString(page_width - right_mm * mm, bottom_mm * mm, f"Page {number} of {total}")
            self.restoreState()

    return _NumberedCanvas
