"""sd_notify spoken to a real datagram socket by a real server process.

The loop is blocked the way it is in real life: by a badly written plugin, a job kind from a
``toombos_edge.handlers`` entry point (on the server's PYTHONPATH only) that calls
``time.sleep`` on the event loop.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerProcess, http
from support import eventually

from toombos_edge.sdnotify import Notifier, notifier_for
from toombos_edge.settings import Settings, Supervisor

WATCHDOG_USEC = 200_000  # a ping every 0.1 s
BLOCK_SECONDS = 2.0
PLUGIN = '''
import time
from toombos_edge.jobs.kinds import JobKind, Outcome

async def hog(ctx):
    time.sleep(ctx.params["seconds"])  # blocks the event loop: what the watchdog is for
    return Outcome({"hog": {"status": "success"}})

def kinds():
    return [JobKind("hog", hog, max_attempts=1)]
'''


class NotifyListener:
    """The supervisor's end: a datagram socket in the abstract namespace, as systemd uses,
    read by a thread that notes when each line arrives."""

    def __init__(self) -> None:
        self.name = f"@toombos-edge-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.log: list[tuple[float, str]] = []  #: (monotonic time, line) of every line seen
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return  # closed
            arrived = time.monotonic()
            with self._changed:
                self.log.extend((arrived, line) for line in data.decode().split("\n"))
                self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._changed:
            return [line for _, line in self.log]

    def wait_for(self, wanted: str, deadline: float = 30.0, count: int = 1) -> list[str]:
        """Every line seen so far, once ``count`` lines start with ``wanted``."""

        def found() -> bool:
            return sum(line.startswith(wanted) for _, line in self.log) >= count

        with self._changed:
            if not self._changed.wait_for(found, timeout=deadline):
                raise AssertionError(f"no {count} x {wanted!r} within {deadline}s; "
                                     f"got {[line for _, line in self.log][-20:]}")
            return [line for _, line in self.log]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(5)


@pytest.fixture
def supervisor() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


def make_plugin(folder: Path) -> Path:
    folder.mkdir()
    (folder / "hog_plugin.py").write_text(PLUGIN)
    info = folder / "hog_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hog-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[toombos_edge.handlers]\nhog = hog_plugin:kinds\n")
    return folder


@pytest.fixture
def notified_server(tmp_path: Path, supervisor: NotifyListener) -> Iterator[ServerProcess]:
    env = {"NOTIFY_SOCKET": supervisor.name, "WATCHDOG_USEC": str(WATCHDOG_USEC),
           "PYTHONPATH": str(make_plugin(tmp_path / "plugin"))}
    server = ServerProcess(tmp_path / "data", ("--access-log", "false"), env=env)
    yield server.start(wait=False)
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(10)


def test_ready_is_said_once_the_port_answers_ready(
    notified_server: ServerProcess, supervisor: NotifyListener
) -> None:
    before = supervisor.wait_for("READY=1")
    assert not any(line.startswith("STOPPING") for line in before)
    proc = notified_server.proc
    assert proc is not None
    # Frozen at once: whatever it did after saying READY=1, the port must already be bound
    # (the kernel completes a connection to a listening socket of a stopped process).
    proc.send_signal(signal.SIGSTOP)
    try:
        with socket.create_connection(("127.0.0.1", notified_server.port), timeout=5):
            pass
    finally:
        proc.send_signal(signal.SIGCONT)
    assert http("GET", notified_server.base + "/ready") == (200, {"ready": True})
    assert "STATUS=ready" in before


def test_watchdog_pings_stop_while_the_loop_is_blocked(
    notified_server: ServerProcess, supervisor: NotifyListener
) -> None:
    supervisor.wait_for("READY=1")
    supervisor.wait_for("WATCHDOG=1", count=5)  # pinging, at about 0.1 s
    key = notified_server.admin_key()
    submitted = time.monotonic()
    status, job = http("POST", notified_server.base + "/api/jobs", key=key,
                       body={"kind": "hog", "params": {"seconds": BLOCK_SECONDS}})
    assert status == 202, job
    url = f"{notified_server.base}/api/jobs/{job['job_id']}"
    eventually(lambda: http("GET", url, key=key)[1]["status"] == "completed",
               BLOCK_SECONDS + 20, "the hog job to finish")
    supervisor.wait_for("WATCHDOG=1", count=supervisor.lines().count("WATCHDOG=1") + 3)
    pings = [at for at, line in supervisor.log if line == "WATCHDOG=1"]
    gaps = [(later - earlier, later) for earlier, later in itertools.pairwise(pings)]
    before = [gap for gap, later in gaps if later < submitted]
    longest, ended = max(gaps)
    # The plugin held the loop for BLOCK_SECONDS after the submission: no ping for that long,
    # then pings again.
    assert longest >= BLOCK_SECONDS * 0.9 and ended > submitted, (before, gaps)
    assert notified_server.proc is not None and notified_server.proc.poll() is None


def test_status_then_stopping_on_sigterm(
    notified_server: ServerProcess, supervisor: NotifyListener
) -> None:
    supervisor.wait_for("READY=1")
    assert "STATUS=0 running, 0 queued" in supervisor.wait_for("STATUS=0 running")
    assert notified_server.stop(signal.SIGTERM) == 0
    lines = supervisor.wait_for("STOPPING=1", deadline=10)
    assert "READY=1" not in lines[lines.index("STOPPING=1"):]


def test_nothing_is_sent_without_a_notify_socket() -> None:
    settings = Settings.load({})
    assert settings.supervisor == Supervisor()
    assert notifier_for(settings.supervisor) is None


def test_a_filesystem_socket_and_a_vanished_supervisor(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    notifier = Notifier(str(path))
    try:
        assert notifier.send("READY=1", "STATUS=ready")
        assert listener.recv(100) == b"READY=1\nSTATUS=ready"
        listener.close()
        path.unlink()
        assert notifier.send("WATCHDOG=1") is False  # logged once, never raised
        assert repr(notifier) == "<Notifier sent=1 failed=1>"
    finally:
        notifier.close()


def test_supervisor_variables_meant_for_another_process_are_ignored() -> None:
    pid = os.getpid()
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid),
           "LISTEN_FDS": "2", "LISTEN_PID": str(pid)}
    assert Supervisor.from_environ(env) == Supervisor("@x", 30_000_000, 2)
    other = {**env, "WATCHDOG_PID": "1", "LISTEN_PID": "1"}
    assert Supervisor.from_environ(other) == Supervisor("@x", 0, 0)
    no_owner = {key: value for key, value in env.items() if not key.endswith("_PID")}
    assert Supervisor.from_environ(no_owner) == Supervisor("@x", 30_000_000, 0)


def test_state_directory_is_the_default_data_dir() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/toombos-edge:/var/lib/other"}
    assert Settings.load(env).data_dir == Path("/var/lib/toombos-edge")
    assert Settings.load({**env, "TOOMBOS_DATA_DIR": "/srv/edge"}).data_dir == Path("/srv/edge")
