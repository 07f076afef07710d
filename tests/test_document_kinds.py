"""Documents of every kind, end to end: POST /api/ingest, the job, the document's text and
its original file back. Each file is made here with its format's own library."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, ClientFactory, auth
from office_samples import (
    make_article_page,
    make_docx,
    make_eml,
    make_epub,
    make_odp,
    make_ods,
    make_odt,
    make_pptx,
    make_rtf,
    make_xlsx,
)
from test_ingest_api import form, ingest

OTTERS = "Otters eat fish, frogs and crayfish along the river banks at night."
BEAVERS = "Beavers build dams from branches and mud; their ponds shelter other animals."
HERONS = "Herons stand still in the shallows for a long time, then strike at passing fish."
P = [OTTERS, BEAVERS]

# (file name, bytes, format, title, the text in order)
KINDS: list[tuple[str, bytes, str, str, str]] = [
    ("rivers.docx",
     make_docx(P, title="Rivers", heading="River life",
               table=[["name", "food"], ["otter", "fish"]]),
     "docx", "Rivers",
     f"River life\n\n{OTTERS}\n\n{BEAVERS}\n\nname | food\notter | fish"),
    ("deck.pptx",
     make_pptx([("River life", OTTERS), ("Dams", BEAVERS)], notes="Mention the otters"),
     "pptx", "River life",
     f"River life\n{OTTERS}\nMention the otters\n\nDams\n{BEAVERS}"),
    ("census.xlsx",
     make_xlsx({"Animals": [["name", "food", "count"], ["otter", "fish", 3]],
                "Plants": [["name"], ["willow"]]}, title="Census"),
     "xlsx", "Census",
     "Animals\nname | food | count\nname: otter; food: fish; count: 3\n\nPlants\nname\n"
     "name: willow"),
    ("rivers.odt", make_odt(P, title="Rivers", heading="River life"), "odt", "Rivers",
     f"River life\n{OTTERS}\n{BEAVERS}"),
    ("animals.ods", make_ods([["name", "food"], ["otter", "fish"]]), "ods", "animals",
     "name | food\notter | fish"),
    ("slides.odp", make_odp([OTTERS, BEAVERS]), "odp", "slides", f"{OTTERS}\n{BEAVERS}"),
    ("book.epub",
     make_epub([("Chapter one", [OTTERS]), ("Chapter two", [BEAVERS])], title="A River Book"),
     "epub", "A River Book",
     f"Chapter one\n{OTTERS}\n\nChapter two\n{BEAVERS}"),
    ("memo.rtf", make_rtf([*P, "Café déjà vu"], title="Memo"), "rtf", "Memo",
     f"{OTTERS}\n{BEAVERS}\nCafé déjà vu"),
    ("note.eml",
     make_eml("Weekly otters", f"Hello team,\n{OTTERS}", f"<p>{BEAVERS}</p>",
              ("report.pdf", b"%PDF-1.4")),
     "eml", "Weekly otters",
     f"From: Ada Lovelace <ada@example.org>\nTo: team@example.org\nSubject: Weekly otters\n\n"
     f"Hello team,\n{OTTERS}\n\nAttachments: report.pdf"),
    ("otters.html",
     make_article_page("Otters | Example", "Otters of the river", [*P, HERONS]), "html",
     "Otters | Example", f"Otters of the river\n{OTTERS}\n{BEAVERS}\n{HERONS}"),
    ("rows.csv", b"name,food\notter,fish\n", "csv", "rows", "name | food\nname: otter; food: fish"),
]


async def document(client: Client, key: str, doc_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/documents/{doc_id}", headers=auth(key))
    assert response.status == 200
    return dict(await response.json())


@pytest.mark.parametrize(("name", "data", "fmt", "title", "text"), KINDS,
                         ids=[kind[0] for kind in KINDS])
async def test_each_kind_is_read_end_to_end(
    client: Client, admin_key: str, name: str, data: bytes, fmt: str, title: str, text: str
) -> None:
    # sent as application/octet-stream: the format is found from the bytes and the name
    job = await ingest(client, admin_key, data=form(data, name, '{"kind": "test"}'))
    assert job["status"] == "completed", job
    output = job["output"]
    assert (output["format"], output["text_extracted"], output["truncated"]) == (fmt, True, False)
    assert "no_text_reason" not in output
    doc = await document(client, admin_key, job["document_id"])
    assert (doc["title"], doc["text"], doc["metadata"]) == (title, text, {"kind": "test"})
    assert doc["blob_sha256"] == hashlib.sha256(data).hexdigest()
    original = await client.get(f"/api/v1/documents/{doc['id']}/file", headers=auth(admin_key))
    assert original.status == 200
    assert await original.read() == data
    assert original.headers["Content-Type"].split(";")[0] == doc["content_type"].split(";")[0]
    assert doc["content_type"] != "application/octet-stream"


async def test_the_same_kinds_are_found_by_name_alone(client: Client, admin_key: str) -> None:
    """A file whose bytes say nothing (an HTML fragment) is read by its extension."""
    job = await ingest(client, admin_key, data=form(b"<p>hi <b>there</b></p>", "frag.htm"))
    doc = await document(client, admin_key, job["document_id"])
    assert (doc["format"], doc["text"]) == ("html", "hi there")


async def test_html_keeps_the_article_not_the_menus(client: Client, admin_key: str) -> None:
    page = make_article_page("News", "Otters return", [OTTERS, BEAVERS, OTTERS])
    job = await ingest(client, admin_key, data=form(page, "page.html"))
    text = (await document(client, admin_key, job["document_id"]))["text"]
    assert OTTERS in text and "Otters return" in text
    for boilerplate in ("Shop the catalogue", "About us", "newsletter", "Cookie settings",
                        "Copyright"):
        assert boilerplate not in text


async def test_an_html_only_email_gives_its_main_content(client: Client, admin_key: str) -> None:
    page = make_article_page("Mail", "Spring update", [OTTERS, BEAVERS]).decode()
    job = await ingest(client, admin_key, data=form(make_eml("Spring", None, page), "s.eml"))
    text = (await document(client, admin_key, job["document_id"]))["text"]
    assert f"Spring update\n{OTTERS}\n{BEAVERS}" in text and "Shop the catalogue" not in text


async def test_text_past_the_limit_is_cut(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(max_text_mb=1)
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    lines = [f"line {i}: " + " ".join(f"w{i * j % 9973}" for j in range(30))
             for i in range(8000)]  # ~1.6 MB of text
    job = await ingest(client, key, data=form(make_docx(lines), "long.docx"))
    assert (job["output"]["text_extracted"], job["output"]["truncated"]) == (True, True)
    doc = await document(client, key, job["document_id"])
    assert 1 << 20 >= len(doc["text"].encode()) > (1 << 20) - 300
    assert doc["text"].startswith(lines[0] + "\n\n" + lines[1])
