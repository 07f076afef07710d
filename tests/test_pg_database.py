"""The PostgreSQL connection the stores share, on a real PostgreSQL: migrated at open,
one transaction per block (all or nothing), and a clear refusal of a schema it cannot use."""

from __future__ import annotations

import pytest

from toombos_edge.errors import DatabaseUnavailable
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.migrate import latest


async def test_open_migrates_and_a_failed_block_writes_nothing(pg_database: PgDatabase) -> None:
    assert pg_database.schema_version == latest() == await pg_database.ping()
    insert = ("INSERT INTO api_keys (id, name, role, secret_hash, created_at) "
              "VALUES ($1, 'n', 'viewer', $2, 0)")
    async with pg_database.transaction() as conn:
        await conn.execute(insert, "key_kept", b"kept")
    with pytest.raises(RuntimeError):
        async with pg_database.transaction() as conn:
            await conn.execute(insert, "key_lost", b"lost")
            raise RuntimeError("changed my mind")
    ids = [row["id"] for row in await pg_database.fetch("SELECT id FROM api_keys ORDER BY id")]
    assert ids == ["key_kept"]


async def test_a_node_that_may_not_migrate_refuses_an_old_schema(postgres_url: str) -> None:
    database = PgDatabase(postgres_url, migrate=False)
    with pytest.raises(DatabaseUnavailable, match="run toombos-edge migrate"):
        await database.open()
    assert "closed" in repr(database)


async def test_an_unreachable_database_is_unavailable_without_its_password() -> None:
    database = PgDatabase("postgresql://edge:s3cret@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable) as refused:
        await database.open()
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
