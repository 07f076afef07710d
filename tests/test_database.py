"""The SQLite store on a real file: group commit, isolation of failures, migrations, crashes."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ServerProcess, http

from toombos_edge.errors import InsufficientStorage, SchemaTooNew
from toombos_edge.store import Database, migrations

LATEST = migrations()[-1][0]


def insert_key(key_id: str) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_at) "
            "VALUES (?, 'n', 'viewer', ?, 0)",
            (key_id, key_id.encode()),
        )
        return key_id

    return op


async def exists(db: Database, key_id: str) -> bool:
    sql = "SELECT 1 FROM api_keys WHERE id = ?"
    return await db.read(lambda c: c.execute(sql, (key_id,)).fetchone() is not None)


async def test_concurrent_writes_are_group_committed(db: Database) -> None:
    """200 writers at once cost a handful of transactions, and each caller resumes only
    once its row is committed (a separate reader connection already sees it)."""
    commits_before = db.commits

    async def writer(n: int) -> bool:
        key_id = await db.write(insert_key(f"key_{n:04d}"))
        return await exists(db, key_id)

    visible = await asyncio.gather(*(writer(n) for n in range(200)))
    assert all(visible)
    assert db.writes == 200
    assert db.commits - commits_before <= 10


async def test_a_failing_write_does_not_undo_the_others(db: Database) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        insert_key("key_partial")(conn)
        raise ValueError("changed my mind")

    commits_before = db.commits
    results = await asyncio.gather(
        db.write(insert_key("key_a")),
        db.write(half_then_fail),
        db.write(insert_key("key_a")),  # duplicate primary key: IntegrityError
        db.write(insert_key("key_b")),
        return_exceptions=True,
    )
    assert results[0] == "key_a" and results[3] == "key_b"
    assert isinstance(results[1], ValueError) and isinstance(results[2], sqlite3.IntegrityError)
    assert db.commits - commits_before == 1  # one transaction for all four
    assert await exists(db, "key_a") and await exists(db, "key_b")
    assert not await exists(db, "key_partial")  # the failed write's own changes are gone


async def test_a_write_that_runs_out_of_space_fails_alone(tmp_path: Path) -> None:
    """SQLite rolls back the whole transaction when a write finds the file full; the writes
    committed with it in one batch run again, and a delete can free space in a full file."""
    db = Database(tmp_path / "full.db", max_size_mb=1)
    await db.open()
    try:
        def big(n: int) -> Callable[[sqlite3.Connection], None]:
            return lambda conn: conn.execute(
                "INSERT INTO api_keys (id, name, role, secret_hash, created_at) "
                "VALUES (?, ?, 'viewer', ?, 0)", (f"big_{n}", "n" * 200_000, f"big_{n}".encode()))

        stored = 0
        with pytest.raises(InsufficientStorage):
            while stored < 100:
                await db.write(big(stored))
                stored += 1
        assert stored >= 2

        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM api_keys WHERE id = 'big_0'")

        results = await asyncio.gather(db.write(big(999)), db.write(drop, frees=True),
                                       db.write(insert_key("key_small")),
                                       return_exceptions=True)
        assert isinstance(results[0], InsufficientStorage)
        assert results[1:] == [None, "key_small"]
        assert await exists(db, "key_small")
        assert not await db.read(lambda c: c.execute(
            "SELECT 1 FROM api_keys WHERE id = 'big_0'").fetchone())
    finally:
        await db.close()


async def test_batches_are_capped_by_batch_max(tmp_path: Path) -> None:
    database = Database(tmp_path / "edge.db", batch_max=10)
    await database.open()
    try:
        await asyncio.gather(*(database.write(insert_key(f"key_{n}")) for n in range(50)))
        assert database.commits >= 5
    finally:
        await database.close()


async def test_readers_cannot_write(db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(insert_key("key_sneaky"))


async def test_write_after_close_is_refused(tmp_path: Path) -> None:
    database = Database(tmp_path / "edge.db")
    await database.open()
    pending = asyncio.ensure_future(database.write(insert_key("key_last")))
    await asyncio.sleep(0)  # let the write reach the queue
    await database.close()
    assert await pending == "key_last"  # queued before close: finished, not dropped
    with pytest.raises(RuntimeError, match="not open"):
        await database.write(insert_key("key_late"))


async def test_migrations_run_once_and_set_user_version(tmp_path: Path) -> None:
    for _ in range(2):
        database = Database(tmp_path / "edge.db")
        await database.open()
        assert database.schema_version == LATEST
        await database.close()
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "api_keys" in tables


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    before = set(threading.enumerate())
    database = Database(tmp_path / "edge.db")
    with pytest.raises(SchemaTooNew, match="newer than this server knows"):
        await database.open()
    assert database.threads == ()
    for thread in set(threading.enumerate()) - before:  # the writer's, ending
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()


async def test_a_slow_read_does_not_hold_up_the_next(tmp_path: Path) -> None:
    """Readers share one queue: while one reader is busy, the next read runs on another."""
    database = Database(tmp_path / "edge.db", readers=2)
    await database.open()
    release = threading.Event()
    try:
        slow = asyncio.ensure_future(database.read(lambda c: release.wait(30)))
        for _ in range(3):  # whichever reader is free takes each, in turn
            assert await database.read(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1
        assert not slow.done()
        release.set()
        assert await slow is True
    finally:
        release.set()
        await database.close()


async def test_a_caller_that_gives_up_does_not_undo_its_batch(db: Database) -> None:
    """A cancelled caller's write still commits with its batch (it was queued), and the
    other callers of that batch resume as usual."""
    first = asyncio.ensure_future(db.write(insert_key("key_cancelled")))
    second = asyncio.ensure_future(db.write(insert_key("key_kept")))
    await asyncio.sleep(0)  # both queued, in one batch
    first.cancel()
    assert await second == "key_kept"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await exists(db, "key_cancelled") and await exists(db, "key_kept")


@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2)])
async def test_synchronous_mode_follows_the_setting(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    database = Database(tmp_path / "edge.db", synchronous=setting)
    await database.open()
    try:
        mode = await database.read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        journal = await database.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert (mode, journal) == (pragma, "wal")
    finally:
        await database.close()


@pytest.mark.slow
def test_kill_9_during_writes_leaves_a_sound_database(
    server_process: Callable[..., ServerProcess],
) -> None:
    """Writes stream in through the real API; SIGKILL lands mid-stream. The file opens,
    passes integrity_check, and holds every key whose creation was acknowledged."""
    server = server_process("--access-log", "false")
    admin, acknowledged, stop = server.admin_key(), [], threading.Event()
    enough = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            try:
                status, body = http("POST", server.base + "/admin/keys", key=admin,
                                    body={"name": "crash"}, timeout=2)
            except OSError:
                return  # the server is gone
            if status == 201:
                acknowledged.append(body["id"])
                if len(acknowledged) >= 150:
                    enough.set()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(60), "the server did not take writes"
        server.stop(signal.SIGKILL)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    with sqlite3.connect(server.data_dir / "edge.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT id FROM api_keys")}
    assert set(acknowledged) <= stored
    again = server_process(data_dir=server.data_dir)
    status, body = http("GET", again.base + "/admin/keys", key=admin)
    assert status == 200 and len(body["keys"]) >= len(acknowledged) + 1


@pytest.mark.parametrize("cancels", [1, 3])
async def test_a_cancelled_close_still_ends_every_connection_thread(
    tmp_path: Path, cancels: int
) -> None:
    """Each connection has a non-daemon thread: one left running keeps the interpreter
    waiting at exit forever. A close cancelled once (while it waits for the writer) or again
    while closing the connections must still end them all."""
    before = set(threading.enumerate())
    db = Database(tmp_path / "edge.db", readers=2)
    await db.open()
    await db.write(insert_key("key_a"))
    ours = set(db.threads)
    assert len(ours) == 3  # the writer and two readers
    assert ours == set(threading.enumerate()) - before  # and no other thread was started
    closing = asyncio.create_task(db.close())
    for _ in range(cancels):
        await asyncio.sleep(0)
        closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    for thread in ours:
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
    with sqlite3.connect(tmp_path / "edge.db") as conn:  # and what was written is there
        assert conn.execute("SELECT id FROM api_keys WHERE id = 'key_a'").fetchone()


async def test_0009_adds_projects_to_a_database_that_has_documents(tmp_path: Path) -> None:
    """An existing file (schema 0008, with a document) gains projects; its documents belong
    to none, and the foreign key holds from then on."""
    path = tmp_path / "edge.db"
    with sqlite3.connect(path) as conn:
        for number, _name, sql in migrations():
            if number <= 8:
                conn.executescript(f"{sql}\nPRAGMA user_version = {number};")
        conn.execute(
            "INSERT INTO documents (id, title, body, format, sha256, size, source, "
            "created_at, updated_at) VALUES ('doc_old', 'Old', 'kept', 'text', 'x', 4, 'api', "
            "1, 1)")
    database = Database(path)
    await database.open()
    try:
        assert database.schema_version == LATEST >= 9

        def read(conn: sqlite3.Connection) -> tuple[object, ...]:
            return tuple(conn.execute(
                "SELECT body, project_id FROM documents WHERE id = 'doc_old'").fetchone())

        assert await database.read(read) == ("kept", None)

        def dangle(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE documents SET project_id = 'prj_none' WHERE id = 'doc_old'")

        with pytest.raises(sqlite3.IntegrityError):
            await database.write(dangle)
    finally:
        await database.close()
