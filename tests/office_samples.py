"""Documents of every kind the server reads, made here with the format libraries themselves
(or, for EPUB, RTF, EML and HTML, written by hand): nothing downloaded, no binary fixtures.

Each maker takes the paragraphs to put in, so a test can look for them in the extracted
text and ``bench/ingest.py`` can make large files of the same shapes.
"""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from html import escape


def make_docx(paragraphs: list[str], *, title: str | None = None, heading: str | None = None,
              table: list[list[str]] | None = None) -> bytes:
    from docx import Document

    document = Document()
    if title:
        document.core_properties.title = title
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: list[tuple[str, str]], *, notes: str | None = None) -> bytes:
    """One "Title and Content" slide per (title, body); ``notes`` on the first."""
    from pptx import Presentation

    deck = Presentation()
    for index, (heading, body) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = body
        if notes and index == 0:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]], *, title: str | None = None) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    if title:
        book.properties.title = title
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_odt(paragraphs: list[str], *, title: str | None = None,
             heading: str | None = None) -> bytes:
    from odf import dc
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    if title:
        document.meta.addElement(dc.Title(text=title))
    if heading:
        document.text.addElement(H(outlinelevel=1, text=heading))
    for text in paragraphs:
        document.text.addElement(P(text=text))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_ods(rows: list[list[str]]) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    table = Table(name="Sheet1")
    for values in rows:
        row = TableRow()
        for value in values:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    document.spreadsheet.addElement(table)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_odp(slides: list[str]) -> bytes:
    """One page per text, in a text box (a page needs a master page, which needs a layout)."""
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    document = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)
    for text in slides:
        page = Page(masterpagename=master)
        frame = Frame(width="20cm", height="4cm", x="1cm", y="1cm")
        box = TextBox()
        box.addElement(P(text=text))
        frame.addElement(box)
        page.addElement(frame)
        document.presentation.addElement(page)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_epub(chapters: list[tuple[str, list[str]]], *, title: str) -> bytes:
    """An EPUB 3 by hand: mimetype (stored, first), container, package, XHTML chapters."""
    items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" '
                    'media-type="application/xhtml+xml"/>' for i in range(len(chapters)))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    package = (
        '<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" '
        'version="3.0" unique-identifier="id"><metadata '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:x:1'
        f'</dc:identifier><dc:title>{escape(title)}</dc:title><dc:language>en</dc:language>'
        f"</metadata><manifest>{items}</manifest><spine>{spine}</spine></package>")
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile '
        'full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip",
                      compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", container)
        book.writestr("OEBPS/content.opf", package)
        for index, (heading, paragraphs) in enumerate(chapters):
            body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
            book.writestr(f"OEBPS/text/ch{index}.xhtml", (
                '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>{escape(heading)}</title></head><body><h1>{escape(heading)}</h1>"
                f"{body}</body></html>"))
    return out.getvalue()


def make_rtf(paragraphs: list[str], *, title: str | None = None) -> bytes:
    """RTF by hand; non-ASCII letters as ``\\'xx`` escapes in code page 1252."""
    def escaped(text: str) -> str:
        return "".join(ch if ord(ch) < 128 else "\\'" + ch.encode("cp1252").hex()
                       for ch in text)

    info = "{\\info{\\title " + escaped(title) + "}}" if title else ""
    body = "".join(escaped(text) + "\\par\n" for text in paragraphs)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}" + info +
            "\\f0\\fs24 " + body + "}").encode("ascii")


def make_eml(subject: str, plain: str | None, html: str | None = None,
             attachment: tuple[str, bytes] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = "team@example.org"
    message["Subject"] = subject
    if plain is not None:
        message.set_content(plain)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                               filename=attachment[0])
    return bytes(message)


def make_article_page(title: str, heading: str, paragraphs: list[str]) -> bytes:
    """A web page as sites make them: a menu, a sidebar of links and a footer around one
    article (readability's job is to find the article)."""
    article = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title></head><body>"
        '<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop the '
        'catalogue</a></li><li><a href="/about">About us</a></li></ul></nav>'
        '<div id="sidebar"><a href="/a">Trending: ten gadgets</a> <a href="/b">Sign up for '
        "the newsletter</a></div>"
        f"<article><h1>{escape(heading)}</h1>{article}</article>"
        '<footer><a href="/privacy">Privacy policy</a> | <a href="/cookies">Cookie settings'
        "</a> | Copyright 2026 Example Media</footer>"
        "</body></html>").encode()
