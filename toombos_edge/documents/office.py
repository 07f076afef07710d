"""Text of Office Open XML documents: Word (.docx), PowerPoint (.pptx), Excel (.xlsx).

Each reader takes a path to a checked, stored copy of the archive (``archives.stored_copy``)
and fills a ``TextBudget``; it returns the document's title when its properties name one.
The libraries are imported on first use: together they add ~25 MB to a process, which an
install that never sees an Office file should not pay. Everything here blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .extracted import TextBudget
from .formats import table_lines


def read_docx(path: Path, budget: TextBudget) -> str | None:
    """Paragraphs and tables of the body, in reading order."""
    from docx import Document
    from docx.table import Table

    document = Document(str(path))
    for block in document.iter_inner_content():
        text = _table_text(block) if isinstance(block, Table) else block.text
        if not budget.add(text):
            break
    return document.core_properties.title or None


def _table_text(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell comes back once per grid column it spans
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def read_pptx(path: Path, budget: TextBudget) -> str | None:
    """Each slide's text (shapes, groups, tables), then its speaker notes."""
    from pptx import Presentation

    deck = Presentation(str(path))
    first_title = None
    for slide in deck.slides:
        title_shape = slide.shapes.title
        if first_title is None and title_shape is not None and title_shape.has_text_frame:
            first_title = title_shape.text_frame.text or None
        notes = (slide.notes_slide.notes_text_frame.text
                 if slide.has_notes_slide and slide.notes_slide.notes_text_frame else "")
        if not budget.add("\n".join([*_shape_texts(slide.shapes), notes])):
            break
    return deck.core_properties.title or first_title


def _shape_texts(shapes: Iterable[Any]) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(shape.shapes)
        elif shape.has_text_frame:
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False):
            yield "\n".join(" | ".join(cell.text for cell in row.cells)
                            for row in shape.table.rows)


def read_xlsx(path: Path, budget: TextBudget) -> str | None:
    """Each sheet under its name, rows as ``header: value`` pairs (like a CSV upload).

    Read-only mode streams a sheet's rows instead of building every cell; ``data_only``
    gives the values a formula last computed (what a reader of the sheet sees).
    """
    from openpyxl import load_workbook

    # A file object, not the path: openpyxl refuses a path whose extension it does not know,
    # and the checked copy is named ``*.part``.
    with path.open("rb") as source:
        book = load_workbook(source, read_only=True, data_only=True)
        try:
            _sheets_text(book, budget)
            title = book.properties.title
        finally:
            book.close()
    return title or None


def _sheets_text(book: Any, budget: TextBudget) -> None:
    for sheet in book.worksheets:
        if not budget.add(sheet.title):
            return
        rows = ([_cell(value) for value in row] for row in sheet.iter_rows(values_only=True))
        for line in table_lines(rows):
            if not budget.add(line, separator="\n"):
                return


def _cell(value: object) -> str:
    return "" if value is None else str(value)
