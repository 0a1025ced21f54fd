"""The PDF report (fpdf2): one page per image or study, with the annotated image, the verdict,
its probability and threshold, the bone and who set it, the model versions, the patient and
study fields of a DICOM header, and the decision-support disclaimer on every page."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from core.errors import ImageReadError
from reports.annotate import annotated_view
from reports.files import write_bytes
from reports.rows import (
    DISCLAIMER,
    Failure,
    ReportRow,
    Result,
    bone_text,
    boxes_text,
    make_row,
    plain,
    probability_text,
    training_note,
)

IMAGE_MAX_SIDE = 1200  # pixels of the image embedded per view (sharp when printed at 15 cm)
IMAGE_AREA_HEIGHT = 120.0  # mm
LABEL_WIDTH = 42.0  # mm
TEXT_BELOW_IMAGES = 115.0  # mm kept free under the images for the result's lines (one page each)
VERDICT_COLOURS = {"Fractured": (211, 47, 47), "Normal": (46, 125, 50)}
AMBER = (178, 106, 0)


class _Report(FPDF):
    """A4 pages with the disclaimer, the models' training data and the page number in every
    footer."""

    note = ""

    def footer(self) -> None:
        self.set_y(-22)
        self.set_font("helvetica", size=7.5)
        self.set_text_color(90, 90, 90)
        self.multi_cell(0, 3.4, pdf_text(f"{DISCLAIMER} {self.note}"), align="L")
        self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R")


def write_pdf(
    results: Iterable[Result],
    path: str | Path,
    weights_dir: str | Path | None = None,
    title: str = "Fracture triage report",
) -> Path:
    """Write one page per result (a failed file gets a page with its message); `weights_dir`
    is where the models came from (for their training data). Raises
    `core.errors.ReportWriteError` if it cannot be written."""
    return write_bytes(path, pdf_bytes(results, weights_dir, title), "PDF report")


def pdf_bytes(
    results: Iterable[Result],
    weights_dir: str | Path | None = None,
    title: str = "Fracture triage report",
) -> bytes:
    """The PDF report as bytes."""
    pdf = _Report(format="A4")
    pdf.note = training_note(weights_dir)
    pdf.set_title(title)
    pdf.set_creator("Bone Fracture Detection (decision support)")
    pdf.set_auto_page_break(True, margin=25)
    made = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    count = 0
    for result in results:
        count += 1
        _page(pdf, result, make_row(result), title, made)
    if not count:
        pdf.add_page()
        _heading(pdf, title, made)
        _line(pdf, "Results", "no image was analysed")
    return bytes(pdf.output())


def pdf_text(text: str) -> str:
    """Text the PDF's built-in font can show (Latin-1; dashes and quotes simplified)."""
    return plain(text).encode("latin-1", "replace").decode("latin-1")


def _page(pdf: FPDF, result: Result, row: ReportRow, title: str, made: str) -> None:
    pdf.add_page()
    _heading(pdf, title, made)
    if row.header:
        _section(pdf, "Patient and study (from the DICOM header)")
        for label, value in row.header.items():
            _line(pdf, label, value, size=9)
        pdf.ln(2)
    if not isinstance(result, Failure):
        _images(pdf, result, row)
    _verdict(pdf, row)
    _line(pdf, "File", row.file)
    if row.kind == "error":
        _line(pdf, "Problem", row.error)
        return
    _line(pdf, "Bone", bone_text(row))
    _line(pdf, "Fracture probability", probability_text(row))
    if row.verdict_confidence is not None:
        _line(pdf, "Confidence", f"{row.verdict_confidence:.0%} for '{row.verdict}'")
    _line(pdf, "Boxes", boxes_text(row))
    if row.notes:
        _line(pdf, "Notes", row.notes, size=9)
    _line(pdf, "Model versions", row.model_versions, size=8)


def _heading(pdf: FPDF, title: str, made: str) -> None:
    pdf.set_font("helvetica", style="B", size=15)
    pdf.set_text_color(0, 0, 0)
    pdf.cell(0, 8, pdf_text(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", style="B", size=9)
    pdf.set_text_color(183, 28, 28)
    pdf.cell(0, 5, "DECISION SUPPORT ONLY - NOT A DIAGNOSIS", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=8)
    pdf.set_text_color(90, 90, 90)
    pdf.cell(0, 5, pdf_text(f"Made {made}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)


def _section(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", style="B", size=10)
    pdf.set_text_color(0, 0, 0)
    pdf.cell(0, 6, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _line(pdf: FPDF, label: str, value: str, size: float = 10) -> None:
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("helvetica", style="B", size=size)
    height = size * 0.5
    pdf.cell(LABEL_WIDTH, height, pdf_text(label))
    pdf.set_font("helvetica", size=size)
    pdf.multi_cell(
        0, height, pdf_text(value or "-"), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )


def _verdict(pdf: FPDF, row: ReportRow) -> None:
    pdf.ln(2)
    pdf.set_font("helvetica", style="B", size=16)
    pdf.set_text_color(*VERDICT_COLOURS.get(row.verdict, AMBER))
    text = f"Verdict: {row.verdict}"
    if row.verdict_confidence is not None:
        text += f" ({row.verdict_confidence:.0%})"
    pdf.cell(0, 9, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)


def _images(pdf: FPDF, result, row: ReportRow) -> None:
    """The views side by side, each fitted into its share of the image area; a view that can
    no longer be read (moved or deleted since the analysis) is said so in its place."""
    views, missing = [], []
    for index in range(len(row.paths)):
        try:
            views.append(annotated_view(result, index, IMAGE_MAX_SIDE))
        except ImageReadError as error:
            missing.append(str(error))
    for message in missing:
        _line(pdf, "Image not shown", message)
    if not views:
        return
    gap = 4.0
    width = (pdf.epw - gap * (len(views) - 1)) / len(views)
    height = min(IMAGE_AREA_HEIGHT, pdf.h - pdf.get_y() - TEXT_BELOW_IMAGES)
    top, x, tallest = pdf.get_y(), pdf.l_margin, 0.0
    for view in views:
        scale = min(width / view.width, height / view.height)
        w, h = view.width * scale, view.height * scale
        pdf.image(_jpeg(view), x=x + (width - w) / 2, y=top, w=w, h=h)
        x += width + gap
        tallest = max(tallest, h)
    pdf.set_y(top + tallest + 1)
    _caption(pdf, row.paths, row.boxes > 0)


def _caption(pdf: FPDF, paths: Sequence[str], boxed: bool) -> None:
    pdf.set_font("helvetica", size=7.5)
    pdf.set_text_color(90, 90, 90)
    text = "  |  ".join(Path(path).name for path in paths)
    if boxed:
        text += "  (red boxes: the most likely fracture regions, with their probability)"
    pdf.cell(0, 4, pdf_text(text), align="C")
    pdf.ln(4)


def _jpeg(image) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    buffer.seek(0)
    return buffer
