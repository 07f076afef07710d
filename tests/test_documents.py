from __future__ import annotations

import asyncio
import hashlib

import pytest
from conftest import Client
from ingesting import ingest_bytes

from toombos_edge.appkeys import DOCUMENTS
from toombos_edge.documents.blobs import hash_file
from toombos_edge.documents.service import choose_title
from toombos_edge.errors import NotFound

pytestmark = pytest.mark.backends


async def test_an_edited_document_no_longer_stands_for_its_bytes(client: Client) -> None:
    docs = client.app[DOCUMENTS]
    first = await ingest_bytes(client.app, b"original words", "a.txt")
    edited = await docs.update(first["document_id"], text="rewritten words")
    assert edited.text_edited and edited.sha256 == hashlib.sha256(b"rewritten words").hexdigest()
    again = await ingest_bytes(client.app, b"original words", "a.txt")
    assert again["duplicate"] is False and again["document_id"] != first["document_id"]
    second = await docs.get(again["document_id"])
    assert second.blob_sha256 == edited.blob_sha256  # one blob, two documents


async def test_delete_keeps_a_shared_blob_until_its_last_user_goes(client: Client) -> None:
    docs = client.app[DOCUMENTS]
    first = await ingest_bytes(client.app, b"shared bytes", "s.txt")
    await docs.update(first["document_id"], text="changed")
    second = await ingest_bytes(client.app, b"shared bytes", "s.txt")
    blob = docs.blobs.path(first["sha256"])

    assert await docs.delete(first["document_id"]) is False
    assert blob.is_file() and hash_file(blob) == first["sha256"]
    raw = await docs.raw(second["document_id"])
    assert raw.path == blob

    assert await docs.delete(second["document_id"]) is True
    assert not blob.exists()
    with pytest.raises(NotFound):
        await docs.get(second["document_id"])
    with pytest.raises(NotFound):
        await docs.delete(second["document_id"])


async def test_delete_racing_a_duplicate_upload_never_loses_the_blob(client: Client) -> None:
    docs = client.app[DOCUMENTS]
    for _ in range(5):
        first = await ingest_bytes(client.app, b"racy", "r.txt")
        deleting = asyncio.create_task(docs.delete(first["document_id"]))
        again = await ingest_bytes(client.app, b"racy", "r.txt")
        await deleting
        surviving = [doc for doc in (await docs.list(source=None, fmt=None, limit=10,
                                                     offset=0))[0]]
        blob = docs.blobs.path(first["sha256"])
        # Whatever the order, a document that survives has its blob.
        assert all(blob.is_file() for doc in surviving if doc.blob_sha256)
        for doc in surviving:
            await docs.delete(doc.id)
        assert not blob.exists()
        assert again["sha256"] == first["sha256"]


async def test_update_follows_text_and_keeps_other_fields(client: Client) -> None:
    docs = client.app[DOCUMENTS]
    doc = await docs.create(title="T", text="one", fmt="text", metadata={"a": 1})
    renamed = await docs.update(doc.id, title="  New\n title ")
    assert (renamed.title, renamed.body, renamed.sha256, renamed.text_edited) == (
        "New title", "one", doc.sha256, False)
    changed = await docs.update(doc.id, text="two", metadata={"b": 2})
    assert changed.sha256 == hashlib.sha256(b"two").hexdigest()
    assert (changed.size, changed.metadata, changed.title) == (3, {"b": 2}, "New title")
    assert changed.updated_at >= doc.updated_at


async def test_list_filters_and_pages(client: Client) -> None:
    docs = client.app[DOCUMENTS]
    made = [await docs.create(title=f"d{i}", text="x" * i, fmt="markdown" if i % 2 else "text",
                              metadata={}) for i in range(5)]
    await ingest_bytes(client.app, b"uploaded", "u.txt")
    page, total = await docs.list(source="api", fmt="markdown", limit=1, offset=1)
    assert total == 2 and [d.id for d in page] == [made[1].id]
    assert page[0].body == ""  # listings leave the text out
    _, uploads = await docs.list(source="upload", fmt=None, limit=5, offset=0)
    assert uploads == 1


def test_titles() -> None:
    assert choose_title(None, "  ", "a\nb") == "a b"
    assert choose_title() == "Untitled"
    assert len(choose_title("x" * 1000)) == 300
