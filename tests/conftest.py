"""Fixtures: the real app in-process on a real SQLite file in a temporary data dir."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP, Envelope, Session
from support import eventually

from toombos_edge.app import create_app
from toombos_edge.appkeys import BUS, ENGINE, KEYS
from toombos_edge.events import Event
from toombos_edge.keys import Role
from toombos_edge.settings import Settings
from toombos_edge.store import Database

#: A real PostgreSQL, started only for the tests that use its fixtures (tests/postgres.py);
#: the job store on either backend (tests/job_backends.py).
pytest_plugins = ["postgres", "job_backends"]

Client = TestClient[Any, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings: a data dir under ``tmp_path``, no access log, every reply checked
    against the route table's types, then ``overrides``."""
    values = {"data_dir": str(tmp_path / "data"), "access_log": "false",
              "validate_responses": "true", **overrides}
    return Settings.load({}, overrides={k: str(v) for k, v in values.items()})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked ``pytest.mark.backends`` runs each test on SQLite and on PostgreSQL
    (ids ``[sqlite]`` and ``[postgres]``): its ``settings`` name the backend. A test of it
    marked ``sqlite_only`` reads the SQLite file itself, and runs once."""
    node = metafunc.definition
    if (node.get_closest_marker("backends") and not node.get_closest_marker("sqlite_only")
            and "backend" in metafunc.fixturenames):
        metafunc.parametrize("backend", ["sqlite", "postgres"])


@pytest.fixture(autouse=True)
def _database_first(request: pytest.FixtureRequest) -> None:
    """On PostgreSQL, the database is made before any app (autouse fixtures come first),
    so that it is dropped after every app on it has closed."""
    if "backend" in request.fixturenames and request.getfixturevalue("backend") == "postgres":
        request.getfixturevalue("postgres_url")


@pytest.fixture
def backend() -> str:
    """SQLite, unless the module is marked ``backends`` (see ``pytest_generate_tests``)."""
    return "sqlite"


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    if backend == "postgres":
        return settings_for(tmp_path, database_url=request.getfixturevalue("postgres_url"))
    return settings_for(tmp_path)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A real, migrated SQLite database of its own (for services tested without HTTP)."""
    database = Database(tmp_path / "edge.db")
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def make_client(aiohttp_client: ClientFactory, tmp_path: Path) -> ClientFactory:
    """The real app in-process, as many as a test needs: ``make_client(root, **settings)``
    serves ``settings_for(root or tmp_path, **settings)`` and is closed at the end."""

    async def make(root: Path | None = None, **overrides: Any) -> Client:
        return await aiohttp_client(create_app(settings_for(root or tmp_path, **overrides)))

    return make


@pytest.fixture
async def client(settings: Settings, aiohttp_client: ClientFactory) -> Client:
    """The app on the ``settings`` fixture (a test module may override that fixture).
    ``settings`` first: set up first, torn down last (a PostgreSQL database outlives the
    app on it)."""
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


# --- a real server in a subprocess -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str, url: str, *, key: str | None = None, body: Any = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """A blocking JSON request (for tests that talk to a subprocess); returns status, body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class ServerProcess:
    """``python -m toombos_edge serve`` on a free port, with its output kept in files."""

    data_dir: Path
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    #: A command the server runs under (``strace …``); its own pid is then the child's.
    wrapper: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  #: added to the clean environment
    #: stdout to a pipe nobody reads (as a stuck log collector would hold it), not a file
    stdout_pipe: bool = False
    #: a process group of its own, as a terminal gives a command (``os.killpg`` is Ctrl-C)
    own_group: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return (self.data_dir.parent / f"serve-{self.port}.out").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.data_dir.parent / f"serve-{self.port}.err").read_text(errors="replace")

    def start(self, *, wait: bool = True) -> ServerProcess:
        """Spawn it; with ``wait``, until it answers (a new port if another process took it)."""
        for _attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except AssertionError:
                if "address already in use" not in self.stderr:
                    raise
            self.port = free_port()  # lost the race for the port to another process
        raise AssertionError(f"no free port after 3 tries: {self.stderr}")

    def _spawn(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.data_dir.parent / f"serve-{self.port}.out", "wb")  # noqa: SIM115
        err = open(self.data_dir.parent / f"serve-{self.port}.err", "wb")  # noqa: SIM115
        command = [*self.wrapper, sys.executable, "-m", "toombos_edge", "serve"]
        command += ["--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.args]
        with out, err:
            env = {**clean_env(), "TOOMBOS_VALIDATE_RESPONSES": "true", **self.env}
            stdout: Any = subprocess.PIPE if self.stdout_pipe else out
            self.proc = subprocess.Popen(command, stdout=stdout, stderr=err, env=env,
                                         start_new_session=self.own_group)

    def wait_ready(self, deadline: float = 20.0) -> float:
        """Seconds until this process (not another on the port) is ready; fails if it died."""
        began = time.monotonic()

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.stderr
            return self._ready_and_ours()

        eventually(ready, deadline, lambda: f"server ready: {self.stderr}",
                   ignore=(urllib.error.URLError, ConnectionError))
        return time.monotonic() - began

    def _ready_and_ours(self) -> bool:
        """/ready is true, and the server knows this data dir's admin key: other test runs
        on this machine bind free ports too, and one may answer on a port we chose."""
        if http("GET", self.base + "/ready", timeout=1)[1] != {"ready": True}:
            return False
        key_file = self.data_dir / "admin.key"
        if not key_file.exists():
            return False
        return http("GET", self.base + "/admin/keys?limit=1", key=self.admin_key())[0] == 200

    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.server_pid(), sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Stopped for good: SIGTERM, then SIGKILL if a loaded machine has not stopped it."""
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)

    def server_pid(self) -> int:
        """The server's pid: the process itself, or the wrapper's child (a tracer that got
        the signal would detach and leave the server running)."""
        assert self.proc is not None
        if not self.wrapper:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0]) if children.split() else self.proc.pid


def clean_env() -> dict[str, str]:
    """The test's environment without TOOMBOS_* settings a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers; each is stopped (SIGKILL if SIGTERM is not enough) at the end."""
    started: list[ServerProcess] = []

    def start(
        *args: str, data_dir: Path | None = None, wait: bool = True,
        wrapper: tuple[str, ...] = (), env: dict[str, str] | None = None,
        own_group: bool = False,
    ) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", args, wrapper=wrapper,
                               env=env or {}, own_group=own_group)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.close()


class Inbox:
    """A real local SMTP server's handler (aiosmtpd) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content or b"")))
        return "250 OK"


@pytest.fixture
async def make_smtp() -> AsyncIterator[Callable[[], Awaitable[tuple[Inbox, int]]]]:
    servers: list[asyncio.Server] = []

    async def make() -> tuple[Inbox, int]:
        inbox = Inbox()
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(inbox), "127.0.0.1", 0)
        servers.append(server)
        return inbox, server.sockets[0].getsockname()[1]

    yield make
    for server in servers:
        server.close()
        await server.wait_closed()


TERMINAL = {"completed", "partial", "failed", "cancelled"}


async def finished(client: Client, job_id: str) -> dict[str, Any]:
    """The job (its JSON) once it reached a terminal state, retries included: from its last
    event, or at once when it already ended. No polling."""
    ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def seen(event: Event) -> None:
        job = event.body.get("job")
        if (job and job["job_id"] == job_id and job["status"] in TERMINAL
                and not ended.done()):
            ended.set_result(job)

    unsubscribe = client.app[BUS].subscribe(seen)
    try:
        current = (await client.app[ENGINE].get(job_id)).to_json()
        if current["status"] in TERMINAL:
            return current
        async with asyncio.timeout(30):
            return await ended
    finally:
        unsubscribe()


# --- promtool (Debian's prometheus package), for the exposition format's own linter --------


def _install_promtool() -> str:
    """apt-get the prometheus package (promtool comes with it); the output, for a failure."""
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # other apt-get runs on the machine may hold it
    steps = [["apt-get", "update", "-q"],
             ["apt-get", "install", "-y", "-q", "--no-install-recommends", *lock, "prometheus"]]
    if os.geteuid() != 0 and shutil.which("sudo"):
        steps = [["sudo", "-n", *step] for step in steps]
    output = []
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(step)}: {exc}"
        output.append(f"$ {' '.join(step)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return "\n".join(output)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool, installed with apt-get when missing; fails (never skips)
    when it cannot be had."""
    found = shutil.which("promtool")
    if found is None:
        output = _install_promtool()
        found = shutil.which("promtool")
        if found is None:
            pytest.fail("promtool is needed to check /metrics and could not be installed "
                        "(apt-get install prometheus as root, or put promtool on PATH):\n"
                        + output, pytrace=False)
    return found
