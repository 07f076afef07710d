"""Every node reads every document: two nodes on one PostgreSQL database, each with its own
data dir, and either no shared directory (the originals and waiting uploads are kept in the
database, each data dir's blobs/ a cache) or one they both mount.

Each node is the real document, project and ingest services over its own pool, its own
job engine and its events bridge: an upload taken in by node A is ingested by node B's
engine, as happens when B claims the job first.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import FormData
from conftest import Client, ClientFactory, auth, settings_for
from support import eventually_async

from toombos_edge.app import create_app
from toombos_edge.appkeys import DOCUMENTS, ENGINE
from toombos_edge.documents.blobs import BlobStore, file_storage
from toombos_edge.documents.ingest import Ingestor
from toombos_edge.documents.intake import IngestService
from toombos_edge.documents.readers import ReaderPool
from toombos_edge.documents.service import DocumentService
from toombos_edge.documents.uploads import Upload
from toombos_edge.errors import Invalid, SettingsError
from toombos_edge.events import EventBus
from toombos_edge.events_bridge import NodeBridge
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import KindRegistry
from toombos_edge.projects.service import ProjectService
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store.blobs import Blobs
from toombos_edge.store.postgres.blobs import CHUNK, PgBlobs
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.documents import PgDocumentStore
from toombos_edge.store.postgres.jobs import PgJobStore
from toombos_edge.store.postgres.projects import PgProjectStore

#: Text past two chunks, so that it is written, copied and read back in several rows.
TEXT = b"".join(b"line %06d of a report that spans chunks\n" % n for n in range(70_000))


@dataclass
class Node:
    """One server's document side: its pool, data dir, services and job engine."""

    db: PgDatabase
    data_dir: Path
    documents: DocumentService
    intake: IngestService
    ingestor: Ingestor
    engine: JobEngine
    bridge: NodeBridge
    started: bool = False

    @property
    def blobs(self) -> Blobs:
        return self.documents.blobs

    async def start(self) -> None:
        await self.engine.start()
        self.started = True

    async def close(self) -> None:
        if self.started:
            await self.engine.stop(5.0)
        await self.bridge.close()
        await self.ingestor.close()
        await self.db.close()


async def open_node(url: str, data_dir: Path, shared_dir: Path | None = None) -> Node:
    """As the composition root builds it: the database's blobs unless a directory is shared."""
    db = PgDatabase(url, pool_size=4)
    await db.open()
    files, uploads = file_storage(data_dir, shared_dir)
    blobs: Blobs = files if shared_dir is not None else PgBlobs(db, files)
    await asyncio.to_thread(uploads.prepare)
    bus = EventBus()
    documents = DocumentService(PgDocumentStore(db), bus, blobs, uploads)
    ingestor = Ingestor(documents, max_text_bytes=8 << 20, readers=ReaderPool(0))
    registry = KindRegistry()
    registry.register(ingestor.kind())
    engine = JobEngine(PgJobStore(db), bus, registry, workers=1)
    projects = ProjectService(PgProjectStore(db), bus, documents)
    intake = IngestService(documents, projects, engine, max_upload_bytes=64 << 20)
    bus.subscribe(ingestor.on_event)
    bridge = NodeBridge(db, bus, node_id=data_dir.name)
    await bridge.start()
    return Node(db, data_dir, documents, intake, ingestor, engine, bridge)


@pytest.fixture
async def nodes(postgres_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """``make(name, shared=None)`` opens a node with its own data dir; all closed after."""
    opened: list[Node] = []

    async def make(name: str, shared: Path | None = None) -> Node:
        node = await open_node(postgres_url, tmp_path / name, shared)
        opened.append(node)
        return node

    yield make
    for node in opened:
        await node.close()


async def take_in(node: Node, data: bytes, filename: str = "report.txt") -> tuple[Upload, Job]:
    """POST /api/ingest on ``node``: the file streamed, then its job stored."""
    sink = node.intake.receive(filename, "text/plain")
    for start in range(0, len(data), 65536):
        await sink.write(data[start:start + 65536])
    upload = await sink.finish()
    return upload, await node.intake.submit({"title": "Report"}, upload)


async def ended(node: Node, job_id: str) -> Job:
    async def done() -> Job | None:
        job = await node.engine.get(job_id)
        return job if job.status in {JobStatus.completed, JobStatus.failed} else None
    return await eventually_async(done, 60.0, f"job {job_id} to end")


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def stored_in_database(db: PgDatabase, sha: str) -> tuple[int, int]:
    """(blob rows, chunk rows) for this hash."""
    return (await db.fetchval("SELECT count(*) FROM blobs WHERE sha256 = $1", sha),
            await db.fetchval("SELECT count(*) FROM blob_chunks WHERE sha256 = $1", sha))


async def test_an_upload_taken_in_on_one_node_is_ingested_and_served_by_another(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a, b = await nodes("a"), await nodes("b")
    upload, job = await take_in(a, TEXT)  # a's engine never runs: b claims the job
    taken_in = a.documents.uploads.path(upload.name)
    assert taken_in.is_file() and files(b.data_dir / "uploads") == []
    await b.start()
    finished = await ended(b, job.id)
    assert finished.status is JobStatus.completed, finished.errors
    doc_id = finished.output["document_id"]

    # b read the bytes a took in: its document's text is the upload, its blob the bytes.
    doc = await a.documents.get(doc_id)
    assert doc.body == TEXT.decode().strip() and doc.blob_sha256 == hashlib.sha256(TEXT).hexdigest()
    assert await stored_in_database(a.db, upload.sha256) == (1, -(-len(TEXT) // CHUNK))
    # The upload is a document now: no copy of it is waiting anywhere.
    assert await a.db.fetchval("SELECT count(*) FROM uploads") == 0
    assert await a.db.fetchval("SELECT count(*) FROM upload_chunks") == 0
    assert files(b.data_dir / "uploads") == []
    # a hears of the job's end from b (the events bridge) and drops its now useless copy.
    await eventually_async(lambda: not taken_in.exists(), 20.0, "a's copy of the upload to go")

    # a never held the blob: its raw original is fetched into a's cache, byte-identical.
    assert not a.blobs.exists(upload.sha256)
    raw = await a.documents.raw(doc_id)
    assert raw.path == a.blobs.path(upload.sha256)
    assert raw.path is not None and raw.path.read_bytes() == TEXT
    assert [p.name for p in files(a.data_dir / "blobs")] == [upload.sha256]  # no temp file
    assert (await b.documents.raw(doc_id)).path == b.blobs.path(upload.sha256)


async def test_deleting_a_document_removes_its_blob_from_the_database_and_the_cache(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a, b = await nodes("a"), await nodes("b")
    upload, job = await take_in(a, TEXT)
    await b.start()
    doc_id = (await ended(b, job.id)).output["document_id"]
    await a.documents.raw(doc_id)  # now cached on both nodes
    assert a.blobs.exists(upload.sha256) and b.blobs.exists(upload.sha256)

    assert await a.documents.delete(doc_id) is True
    assert await stored_in_database(a.db, upload.sha256) == (0, 0)
    assert not a.blobs.exists(upload.sha256)
    # b's copy outlives it only as a cache: b's sweep of unused blobs removes it.
    assert await b.documents.sweep_blobs(settled_before=2e9) == 1
    assert not b.blobs.exists(upload.sha256)


async def test_any_nodes_sweep_removes_blobs_no_document_uses_from_the_database(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    """A blob stored by a node that died before recording its document is removed by the
    retention sweep of a node that never held it; a used one stays."""
    a, b = await nodes("a"), await nodes("b")
    upload, job = await take_in(a, TEXT)
    await b.start()
    await ended(b, job.id)
    orphan = tmp_path / "orphan"
    orphan.write_bytes(b"stored, then its node died")
    orphan_sha = hashlib.sha256(orphan.read_bytes()).hexdigest()
    assert await a.blobs.keep(orphan, orphan_sha) is True
    assert a.blobs.exists(orphan_sha) and not b.blobs.exists(orphan_sha)

    assert await b.documents.sweep_blobs(settled_before=2e9) == 1
    assert await stored_in_database(a.db, orphan_sha) == (0, 0)
    assert await stored_in_database(a.db, upload.sha256) == (1, -(-len(TEXT) // CHUNK))
    assert await a.documents.sweep_blobs(settled_before=2e9) == 1  # its own cached copy
    assert not a.blobs.exists(orphan_sha)


async def test_a_blob_that_another_nodes_ingest_or_document_uses_is_kept(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """Each node checks a blob's users under its own lock; the statement that drops it
    from the database checks every node's documents and waiting ingests again."""
    a, b = await nodes("a"), await nodes("b")
    upload, first = await take_in(a, TEXT, "one.txt")
    await b.start()
    doc_one = (await ended(b, first.id)).output["document_id"]
    await b.engine.stop(5.0)
    b.started = False
    _, again = await take_in(a, TEXT, "two.txt")  # the same bytes; its job waits

    # No document uses the blob after this delete, but a's waiting ingest will.
    assert await b.documents.delete(doc_one) is False
    assert await stored_in_database(a.db, upload.sha256) == (1, -(-len(TEXT) // CHUNK))
    assert b.blobs.exists(upload.sha256)  # a good copy: the cache keeps it

    c = await nodes("c")
    await c.start()
    out = (await ended(c, again.id)).output
    assert out["duplicate"] is False
    sha = upload.sha256
    assert await b.blobs.drop(sha, lambda: b.documents.blob_unused(sha)) is False  # c's uses it
    raw = await a.documents.raw(out["document_id"])
    assert raw.path is not None and raw.path.read_bytes() == TEXT

    assert await c.documents.delete(out["document_id"]) is True
    assert await stored_in_database(a.db, upload.sha256) == (0, 0)


async def test_a_fetched_copy_that_does_not_match_is_refused(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    a = await nodes("a")
    source = tmp_path / "original"
    source.write_bytes(TEXT)
    sha = hashlib.sha256(TEXT).hexdigest()
    pg = a.blobs
    assert isinstance(pg, PgBlobs)
    assert await pg.keep(source, sha) is True
    await asyncio.to_thread(pg.cache.remove, sha)
    await a.db.execute("UPDATE blob_chunks SET data = 'tampered' WHERE sha256 = $1 AND seq = 1",
                       sha)
    with pytest.raises(Exception, match="do not match"):
        await pg.fetch(sha)
    assert files(a.data_dir / "blobs") == []  # neither the blob nor a partial file


async def test_readers_of_a_blob_the_node_lacks_share_one_download(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    a, b = await nodes("a"), await nodes("b")
    for name, data in (("big", TEXT), ("empty", b"")):
        source = tmp_path / name
        source.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        assert await a.blobs.keep(source, sha) is True
        pg = b.blobs
        assert isinstance(pg, PgBlobs)
        before = pg.fetched
        paths = await asyncio.gather(*(pg.fetch(sha) for _ in range(5)))
        assert paths == [pg.path(sha)] * 5 and pg.fetched == before + 1
        assert pg.path(sha).read_bytes() == data
    assert await b.blobs.fetch("0" * 64) is None  # stored nowhere


async def test_a_retried_ingest_keeps_a_blob_whose_upload_is_already_cached(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    """An earlier attempt moved the upload into the store: its file is gone from the
    uploads folder, the blob is what the retry reads and keeps."""
    a, b = await nodes("a"), await nodes("b")
    source = tmp_path / "original"
    source.write_bytes(TEXT)
    sha = hashlib.sha256(TEXT).hexdigest()
    assert await a.blobs.keep(source, sha) is True
    assert await b.blobs.fetch(sha) == b.blobs.path(sha)
    assert await b.blobs.keep(b.documents.uploads.path("up_" + "1" * 32), sha) is False
    assert b.blobs.path(sha).read_bytes() == TEXT


async def test_an_upload_no_job_will_read_is_not_left_shared(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """A request refused, or answered by an earlier job (its Idempotency-Key), leaves
    neither its file nor its rows."""
    a = await nodes("a")

    async def received(text: bytes) -> Upload:
        sink = a.intake.receive("note.txt", "text/plain")
        await sink.write(text)
        return await sink.finish()

    with pytest.raises(Invalid):
        await a.intake.submit({"project_id": "prj_missing"}, await received(b"nowhere"))
    first = await received(b"first")
    job = await a.intake.submit({}, first, idempotency_key="k1")
    again = await a.intake.submit({}, await received(b"second"), idempotency_key="k1")
    assert again.id == job.id
    assert [r["name"] for r in await a.db.fetch("SELECT name FROM uploads")] == [first.name]
    assert await a.db.fetchval("SELECT count(*) FROM upload_chunks") == 1
    assert [p.name for p in files(a.data_dir / "uploads")] == [first.name]


async def test_a_start_keeps_shared_uploads_whose_job_may_come_and_forgets_old_ones(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a = await nodes("a")
    sink = a.intake.receive("late.txt", "text/plain")
    await sink.write(b"an upload whose node died before its job was stored")
    upload = await sink.finish()
    await a.documents.share_upload(upload)
    b = await nodes("b")
    assert await b.documents.sweep_uploads() == 0  # just shared: its job may come
    assert await a.db.fetchval("SELECT count(*) FROM uploads") == 1
    await a.db.execute("UPDATE uploads SET stored_at = stored_at - 7200 * 1000")
    assert await b.documents.sweep_uploads() == 1
    assert await a.db.fetchval("SELECT count(*) FROM upload_chunks") == 0


async def test_with_a_shared_directory_both_nodes_see_one_file_set(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()  # mounted
    a, b = await nodes("a", shared), await nodes("b", shared)
    assert isinstance(a.blobs, BlobStore) and a.blobs.root == b.blobs.root == shared / "blobs"
    upload, job = await take_in(a, TEXT)
    await b.start()
    doc_id = (await ended(b, job.id)).output["document_id"]
    # The database holds no bytes: the one file under the shared directory is the blob.
    assert await a.db.fetchval("SELECT count(*) FROM blobs") == 0
    assert await a.db.fetchval("SELECT count(*) FROM uploads") == 0
    assert files(shared) == [a.blobs.path(upload.sha256)]
    assert files(a.data_dir) == files(b.data_dir) == []
    raw = await a.documents.raw(doc_id)
    assert raw.path is not None and raw.path.read_bytes() == TEXT
    assert await b.documents.delete(doc_id) is True
    assert files(shared) == []


async def test_on_a_shared_directory_a_delete_keeps_the_blob_another_nodes_ingest_found(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    """Node a deletes the last document of some bytes; between its check and its drop,
    node b's ingest of the same bytes finds the file stored and drops its own upload. b's
    job was stored before it looked, so a's second look, with the file set aside, sees it
    and puts the file back (the interleaving replayed step by step, real nodes)."""
    shared = tmp_path / "shared"
    shared.mkdir()  # mounted
    a, b = await nodes("a", shared), await nodes("b", shared)
    assert isinstance(b.blobs, BlobStore)
    upload, first = await take_in(a, TEXT, "one.txt")
    await a.start()
    doc_one = (await ended(a, first.id)).output["document_id"]
    await a.engine.stop(5.0)
    a.started = False
    sha = upload.sha256

    assert await a.documents.store.delete(doc_one) == 0  # a's delete: no document left,
    assert await a.documents.blob_unused(sha)  # and no ingest waiting: unused, so far
    _, again = await take_in(b, TEXT, "two.txt")
    await b.start()
    out = (await ended(b, again.id)).output
    assert b.blobs.deduplicated == 1  # b found the file and counted on it
    assert await a.blobs.drop(sha, lambda: a.documents.blob_unused(sha)) is False

    raw = await a.documents.raw(out["document_id"])
    assert raw.path is not None and raw.path.read_bytes() == TEXT
    assert files(shared / "blobs") == [a.blobs.path(sha)]


async def test_a_start_in_a_shared_directory_leaves_another_nodes_upload_in_flight(
    nodes: Callable[..., Awaitable[Node]], tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()  # mounted
    a = await nodes("a", shared)
    sink = a.intake.receive("big.txt", "text/plain")
    await sink.write(b"x" * (2 << 20))  # streaming: a *.part file in the shared folder
    finished = a.intake.receive("done.txt", "text/plain")
    await finished.write(b"finished, its job about to be stored")
    waiting = await finished.finish()
    old = a.documents.uploads.path("up_" + "0" * 32)
    old.write_bytes(b"left by a node that died an hour ago")
    os.utime(old, (0, 0))

    b = await nodes("b", shared)  # prepares and sweeps the same folder as it starts
    assert await b.documents.sweep_uploads() == 1
    names = {p.name for p in files(shared / "uploads")}
    assert waiting.name in names and old.name not in names
    assert any(name.endswith(".part") for name in names)
    upload = await sink.finish()
    assert a.documents.uploads.path(upload.name).stat().st_size == 2 << 20


def test_a_shared_directory_that_is_not_there_is_never_made(tmp_path: Path) -> None:
    """A share not mounted (yet) stops the start, rather than each node writing to a
    folder of its own that no other node sees."""
    _, uploads = file_storage(tmp_path / "data", tmp_path / "not-mounted")
    with pytest.raises(SettingsError, match="not-mounted does not exist"):
        uploads.prepare()
    assert not (tmp_path / "not-mounted").exists()
    (tmp_path / "mounted").mkdir()
    _, uploads = file_storage(tmp_path / "data", tmp_path / "mounted")
    assert uploads.prepare() == 0 and (tmp_path / "mounted" / "uploads").is_dir()


async def ingest_over_http(client: Client, key: str, data: bytes) -> str:
    """POST /api/ingest, run the job; the document's id."""
    body = FormData()
    body.add_field("file", io.BytesIO(data), filename="report.txt", content_type="text/plain")
    accepted = await (await client.post("/api/ingest", headers=auth(key), data=body)).json()
    await client.app[ENGINE].join()
    status = await (await client.get(f"/api/status/{accepted['job_id']}",
                                     headers=auth(key))).json()
    return str(status["output"]["document_id"])


async def test_a_start_removes_a_download_a_crash_cut_short_and_still_serves_the_blob(
    postgres_url: str, aiohttp_client: ClientFactory, tmp_path: Path,
) -> None:
    """The cache's temporary files are the node's own: the next start removes them, and
    only them; the blob, stored in the database, is fetched again whole when read.
    (``postgres_url`` comes first: the database is dropped after the apps on it close.)"""
    settings = settings_for(tmp_path / "node", database_url=postgres_url)
    first = await aiohttp_client(create_app(settings))
    key = (settings.data_dir / "admin.key").read_text().strip()
    cut_short = await ingest_over_http(first, key, TEXT)
    kept = await ingest_over_http(first, key, b"a short report, cached whole")
    await first.close()

    sha = hashlib.sha256(TEXT).hexdigest()
    cached = settings.data_dir / "blobs" / sha[:2] / sha[2:4] / sha
    cached.unlink()  # as if the node had died while fetching it again:
    part = cached.with_name(f"{sha}.0a1b2c3d.part")
    part.write_bytes(TEXT[:CHUNK])
    before = files(settings.data_dir / "blobs")

    second = await aiohttp_client(create_app(settings))
    assert files(settings.data_dir / "blobs") == [path for path in before if path != part]
    blobs = second.app[DOCUMENTS].blobs
    assert isinstance(blobs, PgBlobs)
    response = await second.get(f"/api/documents/{kept}/raw", headers=auth(key))
    assert await response.read() == b"a short report, cached whole"
    assert blobs.fetched == 0  # read from the cache: the sweep left it alone
    response = await second.get(f"/api/documents/{cut_short}/raw", headers=auth(key))
    assert response.status == 200
    assert await response.read() == TEXT
    assert blobs.fetched == 1 and cached.read_bytes() == TEXT
