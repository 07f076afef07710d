"""A server handed its listening socket the way a systemd socket unit does (LISTEN_FDS,
LISTEN_PID, fd 3) serves on that socket and binds nothing of its own.

``systemd-socket-activate`` (from Debian's systemd package) is systemd's own tool for this:
it listens, and on the first connection execs the server with the socket as fd 3.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, http
from debian_tools import ensure
from support import eventually


@pytest.fixture
def activated(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    ensure({"systemd-socket-activate": "systemd"})
    passed, configured = free_port(), free_port()
    err, out = tmp_path / "serve.err", tmp_path / "serve.out"
    with err.open("wb") as stderr, out.open("wb") as stdout:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "--listen", f"127.0.0.1:{passed}", sys.executable,
             "-m", "toombos_edge", "serve", "--port", str(configured),
             "--data-dir", str(tmp_path / "data")],
            stdout=stdout, stderr=stderr,
        )

    def listening() -> bool:
        assert proc.poll() is None, err.read_text()
        return f"Listening on 127.0.0.1:{passed}" in err.read_text()

    eventually(listening, 20, err.read_text)
    yield proc, passed, configured
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ready_lines(out: Path, deadline: float = 5.0) -> list[str]:
    """The "ready" log lines, once there is one (log lines are written by a thread, in
    batches: a line may reach the file a few milliseconds after it was logged)."""
    return eventually(
        lambda: [line for line in out.read_text().splitlines() if '"msg":"ready"' in line],
        deadline, "a ready line in the log", every=0.01)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_serves_on_the_passed_socket_only(
    activated: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    proc, passed, configured = activated
    # The first connection starts the server; it waits in the socket's backlog meanwhile.
    assert http("GET", f"http://127.0.0.1:{passed}/ready", timeout=60) == (200, {"ready": True})
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    assert http("GET", f"http://127.0.0.1:{passed}/admin/keys?limit=1", key=key)[0] == 200
    assert not listening(configured)  # the passed socket replaced host:port
    ready = ready_lines(tmp_path / "serve.out")
    assert len(ready) == 1 and f'"listening":["127.0.0.1:{passed}"]' in ready[0], ready
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
