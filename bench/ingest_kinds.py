"""The mixed corpus of ``bench/ingest.py``: one file of each format the server reads, made
here with the formats' own libraries (``tests/office_samples.py``), never downloaded.

Each file carries about ``text_kb`` KiB of text in words drawn from a fixed vocabulary
(seeded, so every run makes the same files). Per format the bench times

* ours: the upload (``POST /api/ingest`` over loopback, one request at a time) to the
  job's completion as a client sees it, and the ingest job's own run (its ``started_at``
  to ``completed_at``: hash check, extraction off the loop, storing);
* the peer: the same library called directly in this process on the same file, reading
  the same text (what a script using that library alone would do).

MB/s is of the file's bytes. ``/health`` is polled every 20 ms throughout, from another
thread, for its p99.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tests import office_samples as made  # the sample makers the tests use
from tests import samples

ROOT = Path(__file__).resolve().parent.parent

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "po", "ra", "se", "ti", "vo", "ze")
         for b in ("bar", "ces", "dol", "fin", "gat", "hul", "mer", "nox", "pil", "tur")]


def paragraphs(text_kb: int, seed: int = 7) -> list[str]:
    """About ``text_kb`` KiB of sentences of 12-40 words."""
    rng, out, size = random.Random(seed), [], 0
    while size < text_kb * 1024:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40))) + "."
        out.append(sentence.capitalize())
        size += len(sentence) + 1
    return out


def make_corpus(folder: Path, text_kb: int) -> dict[str, Path]:
    """One file per format in ``folder``; returns format → path."""
    lines = paragraphs(text_kb)
    rows = [[str(i), *line.split()[:5]] for i, line in enumerate(lines)]
    files = {
        "docx": made.make_docx(lines, title="Bench"),
        "pptx": made.make_pptx([(f"Slide {i}", "\n".join(lines[i:i + 20]))
                                for i in range(0, len(lines), 20)]),
        "xlsx": made.make_xlsx({"Data": [["id", "a", "b", "c", "d", "e"], *rows]}),
        "odt": made.make_odt(lines, title="Bench"),
        "epub": made.make_epub([(f"Chapter {i}", lines[i:i + 40])
                                for i in range(0, len(lines), 40)], title="Bench"),
        "rtf": made.make_rtf(lines, title="Bench"),
        "eml": made.make_eml("Bench", "\n\n".join(lines)),
        "html": made.make_article_page("Bench", "Bench", lines),
        "csv": _csv(rows),
        "pdf": samples.make_pdf([line[:90] for line in lines[:3000]]),  # a line a page
    }
    paths = {}
    for fmt, data in files.items():
        paths[fmt] = folder / f"bench.{fmt}"
        paths[fmt].write_bytes(data)
    return paths


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([["id", "a", "b", "c", "d", "e"], *rows])
    return out.getvalue().encode()


# --- the peers: each library called directly ----------------------------------------------

def _docx(path: Path) -> str:
    from docx import Document
    return "\n".join(p.text for p in Document(str(path)).paragraphs)


def _pptx(path: Path) -> str:
    from pptx import Presentation
    return "\n".join(shape.text_frame.text for slide in Presentation(str(path)).slides
                     for shape in slide.shapes if shape.has_text_frame)


def _xlsx(path: Path) -> str:
    from openpyxl import load_workbook
    book = load_workbook(str(path), read_only=True, data_only=True)
    text = "\n".join(" ".join(str(v) for v in row if v is not None)
                     for sheet in book.worksheets for row in sheet.iter_rows(values_only=True))
    book.close()
    return text


def _odt(path: Path) -> str:
    from odf import teletype
    from odf.opendocument import load
    return str(teletype.extractText(load(str(path)).body))


def _epub(path: Path) -> str:
    import zipfile

    import lxml.html
    with zipfile.ZipFile(path) as book:
        return "\n".join(lxml.html.fromstring(book.read(name)).text_content()
                         for name in book.namelist() if name.endswith(".xhtml"))


def _rtf(path: Path) -> str:
    from striprtf.striprtf import rtf_to_text
    return str(rtf_to_text(path.read_text("ascii")))


def _eml(path: Path) -> str:
    from email import policy
    from email.parser import BytesParser
    message = BytesParser(policy=policy.default).parse(path.open("rb"))
    body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    return str(body.get_content())


def _html(path: Path) -> str:
    from readability import Document
    return str(Document(path.read_text()).summary())


def _csv_read(path: Path) -> str:
    return "\n".join(" ".join(row) for row in csv.reader(io.StringIO(path.read_text())))


def _pdf(path: Path) -> str:
    from pypdf import PdfReader
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


DIRECT: dict[str, Callable[[Path], str]] = {
    "docx": _docx, "pptx": _pptx, "xlsx": _xlsx, "odt": _odt, "epub": _epub, "rtf": _rtf,
    "eml": _eml, "html": _html, "csv": _csv_read, "pdf": _pdf,
}
PEERS = {"docx": "python-docx", "pptx": "python-pptx", "xlsx": "openpyxl (read-only)",
         "odt": "odfpy", "epub": "zipfile + lxml.html", "rtf": "striprtf", "eml": "email",
         "html": "readability-lxml", "csv": "csv", "pdf": "pypdf"}


def direct_rate(fmt: str, path: Path) -> float:
    """MB/s of the library alone on the file (best of two: the first warms imports)."""
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        if not DIRECT[fmt](path):
            raise RuntimeError(f"{fmt}: the library read no text")
        best = min(best, time.perf_counter() - began)
    return path.stat().st_size / 1e6 / best


# --- ours ---------------------------------------------------------------------------------

def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ingest_one(port: int, key: str, fmt: str, path: Path,
               upload: Callable[..., tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Upload one file and wait for its job; the rates and what the job said."""
    size = path.stat().st_size
    began = time.perf_counter()
    _seconds, answer = upload(port, key, path, size / (1 << 20))
    job = _wait(port, key, str(answer["job_id"]))
    end_to_end = time.perf_counter() - began
    if job["status"] != "completed" or not job["output"].get("text_extracted"):
        raise RuntimeError(f"{fmt}: the job did not read the file: {job}")
    if job["output"]["format"] != fmt:
        raise RuntimeError(f"{fmt}: taken for {job['output']['format']}")
    run = _stamp(job["completed_at"]) - _stamp(job["started_at"])
    return {"format": fmt, "bytes": size, "text_length": job["output"]["text_length"],
            "e2e_mb_s": size / 1e6 / end_to_end, "job_mb_s": size / 1e6 / max(run, 0.001)}


def _wait(port: int, key: str, job_id: str, deadline: float = 600) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        conn.request("GET", f"/api/status/{job_id}", headers={"Authorization": f"Bearer {key}"})
        job: dict[str, Any] = json.loads(conn.getresponse().read())
        if job.get("status") in {"completed", "partial", "failed", "cancelled"}:
            return job
        time.sleep(0.01)
    raise RuntimeError(f"job {job_id} did not finish in time")
