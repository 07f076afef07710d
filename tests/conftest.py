"""Fixtures: the real app in-process on a real SQLite file in a temporary data dir."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from toombos_edge.app import create_app
from toombos_edge.appkeys import KEYS
from toombos_edge.keys import Role
from toombos_edge.settings import Settings

Client = TestClient[Any, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({}, overrides={"data_dir": str(tmp_path / "data"), "access_log": "false"})


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def admin_key(client: Client, settings: Settings) -> str:
    """The admin key the server wrote on its first start."""
    return (settings.data_dir / "admin.key").read_text().strip()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_key(client: Client) -> Callable[[str], Awaitable[str]]:
    """Create a key of the given role through the real key service; returns its secret."""

    async def make(role: str) -> str:
        _key, secret = await client.app[KEYS].create(f"test {role}", Role[role])
        return secret

    return make
