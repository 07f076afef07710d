from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Client
from ingesting import ingest_bytes, run_ingest, stage
from samples import make_pdf

from toombos_edge.appkeys import BUS, DOCUMENTS, INGESTOR
from toombos_edge.documents.blobs import hash_file
from toombos_edge.documents.extract import ExtractionError
from toombos_edge.documents.ingest import NOTHING_SENT, validate_params
from toombos_edge.errors import Invalid, NotFound
from toombos_edge.events import INGESTION_COMPLETE, Event

pytestmark = pytest.mark.backends


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(("name", "data", "fmt", "title", "needle"), [
    ("notes.txt", b"plain words here", "text", "notes", "plain words"),
    ("guide.md", b"# Setup guide\n\nrun make", "markdown", "Setup guide", "run make"),
    ("page.html", b"<title>Home</title><p>visible</p><script>x()</script>", "html", "Home",
     "visible"),
    ("data.json", b'{"name": "widget"}', "json", "data", "name: widget"),
    ("rows.csv", b"a,b\n1,2\n", "csv", "rows", "a: 1; b: 2"),
    ("paper.pdf", make_pdf(["portable text"], title="Paper"), "pdf", "Paper", "portable text"),
])
async def test_each_format_becomes_a_document(
    client: Client, name: str, data: bytes, fmt: str, title: str, needle: str
) -> None:
    result = await ingest_bytes(client.app, data, name)
    assert (result["format"], result["title"], result["duplicate"]) == (fmt, title, False)
    doc = await client.app[DOCUMENTS].get(result["document_id"])
    assert needle in doc.body
    assert (doc.source, doc.filename, doc.size) == ("upload", name, len(data))
    assert doc.blob_sha256 == hashlib.sha256(data).hexdigest() == result["sha256"]
    assert doc.sha256 == hashlib.sha256(doc.body.encode()).hexdigest()


async def test_the_stored_blob_hashes_to_its_name(client: Client) -> None:
    data = "".join(f"line {i}: ünïcödé\n" for i in range(200_000)).encode()  # ~4 MB
    result = await ingest_bytes(client.app, data, "table.log")
    docs = client.app[DOCUMENTS]
    doc = await docs.get(result["document_id"])
    assert doc.blob_sha256 is not None
    blob = docs.blobs.path(doc.blob_sha256)
    assert hash_file(blob) == doc.blob_sha256 == hashlib.sha256(data).hexdigest()
    assert files(docs.uploads.root) == []  # the upload moved into the blob store


async def test_same_bytes_twice_is_one_blob_and_one_document(client: Client) -> None:
    events: list[Event] = []
    client.app[BUS].subscribe(events.append)
    first = await ingest_bytes(client.app, b"same content", "a.txt")
    second = await ingest_bytes(client.app, b"same content", "b.txt", title="other")
    assert second["document_id"] == first["document_id"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    docs = client.app[DOCUMENTS]
    assert len(files(docs.blobs.root)) == 1
    assert files(docs.uploads.root) == []
    ingested = [e.body["data"] for e in events if e.type == INGESTION_COMPLETE]
    assert [(e["document_id"], e["duplicate"], e["bytes"]) for e in ingested] == [
        (first["document_id"], False, 12), (first["document_id"], True, 12)]
    assert ingested[0]["sha256"] == hashlib.sha256(b"same content").hexdigest()


async def test_progress_rises_to_100(client: Client) -> None:
    upload = await stage(client.app, b"words", "w.txt")
    _outcome, progress = await run_ingest(client.app, {"upload": upload.to_json()})
    assert progress == sorted(progress) and progress[-1] == 100


async def test_a_corrupt_file_is_kept_without_text_and_says_why(client: Client) -> None:
    data = make_pdf(["x"])[:70]
    upload = await stage(client.app, data, "broken.pdf")
    outcome, _ = await run_ingest(client.app, {"upload": upload.to_json(), "title": "Broken"})
    assert outcome.output["text_extracted"] is False
    assert "corrupt or unreadable PDF" in outcome.output["no_text_reason"]
    assert outcome.results["document"]["status"] == "success"
    docs = client.app[DOCUMENTS]
    doc = await docs.get(str(outcome.document_id))
    assert (doc.title, doc.format, doc.body, doc.content_type) == (
        "Broken", "pdf", "", "application/pdf")
    assert doc.blob_sha256 == hashlib.sha256(data).hexdigest()
    assert docs.blobs.path(doc.blob_sha256).read_bytes() == data
    assert files(docs.uploads.root) == []


async def test_json_text_that_does_not_parse_fails_the_job(client: Client) -> None:
    with pytest.raises(ExtractionError, match="invalid JSON"):
        await run_ingest(client.app, {"text": '{"a": ', "format": "json"})
    with pytest.raises(ExtractionError, match="must be uploaded as a file"):
        await run_ingest(client.app, {"text": "words", "format": "docx"})
    docs = client.app[DOCUMENTS]
    assert (await docs.list(source=None, fmt=None, limit=10, offset=0))[1] == 0


async def test_vanished_upload_is_a_clear_error(client: Client) -> None:
    upload = await stage(client.app, b"gone soon", "g.txt")
    client.app[DOCUMENTS].uploads.path(upload.name).unlink()
    with pytest.raises(NotFound, match=r"upload of 'g\.txt' is gone"):
        await run_ingest(client.app, {"upload": upload.to_json()})


async def test_text_ingest_and_its_duplicate(client: Client) -> None:
    params = {"text": "<h1>Hi</h1><p>there</p>", "format": "html", "metadata": '{"k": 1}'}
    first, _ = await run_ingest(client.app, params)
    again, _ = await run_ingest(client.app, params)
    assert again.output["document_id"] == first.output["document_id"]
    assert again.output["duplicate"] is True
    doc = await client.app[DOCUMENTS].get(str(first.document_id))
    assert (doc.body, doc.format, doc.metadata, doc.source) == ("Hi\nthere", "html", {"k": 1},
                                                                "api")


async def test_seed_ingest_without_file_or_text_makes_no_document(client: Client) -> None:
    for params in ({"metadata": '{"test":"data"}'}, {"text": "  \n", "title": "Blank"}):
        outcome, _ = await run_ingest(client.app, params)
        assert outcome.document_id is None and outcome.results == {}
        assert outcome.output == {"document_id": None, "reason": NOTHING_SENT}
    _page, total = await client.app[DOCUMENTS].list(source=None, fmt=None, limit=10, offset=0)
    assert total == 0


def test_params_are_validated() -> None:
    assert validate_params({"metadata": '{"a": 1}'}) == {"metadata": {"a": 1}}
    assert validate_params({"format": "md"})["format"] == "markdown"
    for bad, message in [
        ({"metadata": "[1]"}, "must be a JSON object"),
        ({"metadata": "{nope"}, "not valid JSON"),
        ({"metadata": 3}, "must be a JSON object"),
        ({"text": 5}, "'text' must be a string"),
        ({"format": "pages"}, "unsupported format"),
    ]:
        with pytest.raises(Invalid, match=message):
            validate_params(bad)


async def test_kind_is_final_on_failure(client: Client) -> None:
    kind = client.app[INGESTOR].kind()
    assert (kind.name, kind.max_attempts) == ("ingest", 1)


async def test_a_forged_hash_is_refused_before_anything_is_stored(client: Client) -> None:
    honest = await ingest_bytes(client.app, b"the real content", "real.txt")
    upload = await stage(client.app, b"something else entirely", "forged.txt")
    forged = {**upload.to_json(), "sha256": honest["sha256"], "size": 16}
    with pytest.raises(Invalid, match="does not match its recorded size and SHA-256"):
        await run_ingest(client.app, {"upload": forged})
    docs = client.app[DOCUMENTS]
    assert hash_file(docs.blobs.path(honest["sha256"])) == honest["sha256"]
    assert (await docs.list(source=None, fmt=None, limit=5, offset=0))[1] == 1
    assert files(docs.uploads.root) == []  # a final failure drops the upload
