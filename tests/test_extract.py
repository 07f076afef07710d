from __future__ import annotations

from pathlib import Path

import pytest
from samples import make_pdf

from toombos_edge.documents.extract import (
    Extracted,
    ExtractionError,
    extract_file,
    extract_upload,
)

FRENCH = (
    "Le coeur a ses raisons que la raison ne connaît point. Où est la bibliothèque? À côté "
    "de l'église, près du marché. Les élèves étudient très sérieusement pendant l'été."
)
RUSSIAN = (
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация "
    "южных губерний даст мощный толчок подъёму сельского хозяйства."
)
JAPANESE = "日本語のテキストです。これはシフトJISでエンコードされています。東京は日本の首都です。"


def run(
    tmp_path: Path, data: bytes, name: str, content_type: str = "",
    declared: str | None = None, max_bytes: int = 1 << 20,
) -> Extracted:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return extract_file(path, filename=name, content_type=content_type, declared=declared,
                        max_bytes=max_bytes)


def test_plain_text(tmp_path: Path) -> None:
    got = run(tmp_path, b"  hello plain world \n", "notes.txt")
    assert (got.format, got.text, got.title, got.encoding) == (
        "text", "hello plain world", None, "utf-8")


def test_markdown_title_is_the_first_heading(tmp_path: Path) -> None:
    got = run(tmp_path, b"intro\n\n## Release notes ##\n\n* fixed\n", "README.md")
    assert (got.format, got.title) == ("markdown", "Release notes")
    assert "* fixed" in got.text


def test_html_visible_text_and_title(tmp_path: Path) -> None:
    page = (b"<html><head><title> Quarterly  report </title><style>p{color:red}</style>"
            b"<script>var secret = 1;</script></head><body><h1>Results</h1>"
            b"<p>Revenue &amp; growth<br>up 5%</p><noscript>enable js</noscript>"
            b"<template>hidden</template></body></html>")
    got = run(tmp_path, page, "report.html")
    assert (got.format, got.title) == ("html", "Quarterly report")
    assert got.text == "Results\nRevenue & growth\nup 5%"


def test_json_as_readable_lines(tmp_path: Path) -> None:
    got = run(tmp_path, b'{"title": "Specs", "cpu": {"cores": 8, "fast": true}, '
                        b'"tags": ["a", null]}', "x.json")
    assert (got.format, got.title) == ("json", "Specs")
    assert got.text.splitlines() == [
        "title: Specs", "cpu.cores: 8", "cpu.fast: true", "tags[0]: a", "tags[1]: "]


def test_csv_rows_read_by_column(tmp_path: Path) -> None:
    got = run(tmp_path, b"name;city\nAda;London\nGrace;Arlington\n", "people.csv")
    assert got.format == "csv"
    assert got.text.splitlines() == [
        "name | city", "name: Ada; city: London", "name: Grace; city: Arlington"]


def test_pdf_text_layer_and_title(tmp_path: Path) -> None:
    pdf = make_pdf(["First page about otters", "Second (page) on beavers"], title="Rivers")
    got = run(tmp_path, pdf, "upload.bin")  # found by its magic bytes, not its name
    assert (got.format, got.title, got.pages) == ("pdf", "Rivers", 2)
    assert got.text == "First page about otters\n\nSecond (page) on beavers"


def test_corrupt_pdf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="corrupt or unreadable PDF"):
        run(tmp_path, make_pdf(["x"])[:60], "broken.pdf")


def test_garbage_named_pdf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="PDF"):
        run(tmp_path, b"this is not a pdf at all", "fake.pdf")


def test_invalid_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="invalid JSON"):
        run(tmp_path, b'{"a": ', "x.json")


def test_binary_gives_no_text_and_says_why(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    with pytest.raises(ExtractionError, match=r"no text can be drawn from this file \(image/png"):
        run(tmp_path, png, "photo.png", "image/png")
    with pytest.raises(ExtractionError, match="binary"):
        run(tmp_path, png, "photo.txt")
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    kept = extract_upload(path, filename="photo.png", content_type="image/png", declared=None,
                          max_bytes=1 << 20)
    assert (kept.format, kept.text, kept.title) == ("binary", "", None)
    assert kept.error is not None and "image/png" in kept.error


def test_unknown_declared_format(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="unsupported format 'pages'"):
        run(tmp_path, b"text", "a.txt", declared="pages")


def test_declared_format_wins_over_the_name(tmp_path: Path) -> None:
    got = run(tmp_path, b"<p>hi <b>there</b></p>", "snippet.txt", declared="htm")
    assert (got.format, got.text) == ("html", "hi there")


@pytest.mark.parametrize(("text", "encoding"), [
    (FRENCH, "cp1252"), (RUSSIAN, "cp1251"), (RUSSIAN, "koi8_r"), (JAPANESE, "shift_jis"),
    (RUSSIAN, "utf-16"), (FRENCH, "utf-8-sig"),
])
def test_encodings_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    got = run(tmp_path, text.encode(encoding), "legacy.txt")
    assert got.text == text
    assert got.encoding


def test_declared_charset_is_honoured(tmp_path: Path) -> None:
    got = run(tmp_path, "naïve".encode("latin-1"), "a.txt", "text/plain; charset=ISO-8859-1")
    assert (got.text, got.encoding) == ("naïve", "iso8859-1")


def test_text_past_the_limit_is_cut_and_flagged(tmp_path: Path) -> None:
    got = run(tmp_path, "é".encode() * 1000, "big.txt", max_bytes=101)
    assert got.truncated
    assert got.text == "é" * 50  # the split character at the cut is dropped, not mangled
