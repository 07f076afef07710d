"""What a started server holds in memory: libraries it needs only later are not imported.

Each deferred library costs resident memory from the start (bench.startup, idle RSS under
60 MB): PyJWT with cryptography about 9 MB, charset-normalizer 2.6 MB, jinja2 2 MB,
markdown-it 1 MB; asyncpg too (a node on SQLite never talks to PostgreSQL). A fresh
interpreter starts the real app, answers a request, and lists what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEFERRED = ("jwt", "cryptography", "charset_normalizer", "jinja2", "markdown_it",
            "asyncpg")

SERVE_ONCE = """
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from toombos_edge.app import create_app
from toombos_edge.settings import Settings

async def main() -> None:
    settings = Settings.load({}, overrides=json.loads(sys.argv[1]))
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/health")).status == 200
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:])))

asyncio.run(main())
"""


def loaded_after_start(tmp_path: Path, **overrides: str) -> set[str]:
    settings = {"data_dir": str(tmp_path / "data"), **overrides}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_ONCE, json.dumps(settings), *DEFERRED],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


def test_a_default_server_imports_none_of_the_deferred_libraries(tmp_path: Path) -> None:
    assert loaded_after_start(tmp_path) == set()


def test_a_server_with_an_identity_provider_loads_pyjwt_at_start(tmp_path: Path) -> None:
    """The first token does not wait for the import: the verifier makes it at start."""
    loaded = loaded_after_start(tmp_path, jwt_secret="s" * 32, jwt_issuer="https://idp.test",
                                jwt_audience="edge")
    assert {"jwt", "cryptography"} <= loaded
    assert not loaded & {"jinja2", "markdown_it", "charset_normalizer"}
