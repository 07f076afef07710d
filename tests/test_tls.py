"""HTTPS and WSS served directly by a real server, checked by clients that verify the
certificate (made by the test with ``openssl req``)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import Client, ServerProcess, clean_env
from support import eventually_async

from toombos_edge.errors import SettingsError
from toombos_edge.settings import Settings
from toombos_edge.tls import HSTS, server_context


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make the test's certificate"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[ServerProcess]:
    cert, key = certificate
    server = ServerProcess(tmp_path / "data", ("--tls-cert", str(cert), "--tls-key", str(key)))
    yield server.start(wait=False)
    server.stop()


def client_context(cert: Path) -> ssl.SSLContext:
    """What a careful client does: verify the chain and the host name against ``cert``."""
    return ssl.create_default_context(cafile=str(cert))


def negotiated(port: int, cert: Path) -> str | None:
    """The TLS version a verifying client gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, client_context(
        cert
    ).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.version()


async def let_go(session: aiohttp.ClientSession, port: int) -> None:
    """Close ``session`` and wait until its TLS connections to ``port`` are closed.

    A TLS close is a close_notify each way, done by the loop after the session let go:
    a test that ended its loop first would leave those sockets open behind it.
    """
    await session.close()
    await eventually_async(lambda: not established_to(port), 10,
                           f"connections to {port} to close", every=0.01)


def established_to(port: int) -> bool:
    """Some socket on this machine has an established TCP connection to ``port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            remote, state = line.split()[2:4]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                return True
    return False


async def wait_ready(session: aiohttp.ClientSession, server: ServerProcess, url: str) -> None:
    async def ready() -> bool:
        assert server.proc is not None and server.proc.poll() is None, server.stderr
        async with session.get(url + "/ready") as response:
            return response.status == 200

    await eventually_async(ready, 30, lambda: f"ready over HTTPS: {server.stderr}",
                           ignore=(aiohttp.ClientConnectionError,))


async def test_https_and_wss_with_a_verified_certificate(
    tls_server: ServerProcess, certificate: tuple[Path, Path]
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}"
    connector = aiohttp.TCPConnector(ssl=client_context(certificate[0]))
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_ready(session, tls_server, url)
        key = tls_server.admin_key()
        async with session.get(url + "/health") as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"] == HSTS
        assert negotiated(tls_server.port, certificate[0]) in {"TLSv1.2", "TLSv1.3"}
        async with session.ws_connect(url.replace("https", "wss") + "/ws/jobs",
                                      params={"token": key}) as ws:
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json(timeout=10))["type"] == "pong"
        await let_go(session, tls_server.port)


async def test_plain_http_and_unverified_clients_get_nothing(
    tls_server: ServerProcess, certificate: tuple[Path, Path]
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}"
    connector = aiohttp.TCPConnector(ssl=client_context(certificate[0]))
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_ready(session, tls_server, url)
        await let_go(session, tls_server.port)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(url + "/ready")  # the system's CAs do not know this one
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{tls_server.port}/ready")
        await let_go(session, tls_server.port)


async def test_a_restart_loads_a_renewed_certificate(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "live")
    old_cert = cert.read_bytes()
    server = ServerProcess(tmp_path / "data", ("--tls-cert", str(cert), "--tls-key", str(key)))
    url = f"https://127.0.0.1:{server.port}"
    renewed = make_certificate(tmp_path / "renewed")
    try:
        server.start(wait=False)
        connector = aiohttp.TCPConnector(ssl=client_context(cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, server, url)
            await let_go(session, server.port)
        connector = aiohttp.TCPConnector(ssl=client_context(renewed[0]))
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(url + "/live")  # the renewed one is not served yet
            await let_go(session, server.port)
        assert server.stop() == 0
        cert.write_bytes(renewed[0].read_bytes())  # the renewal: new files, same paths
        key.write_bytes(renewed[1].read_bytes())
        assert cert.read_bytes() != old_cert
        server.start(wait=False)
        connector = aiohttp.TCPConnector(ssl=client_context(renewed[0]))
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, server, url)
            await let_go(session, server.port)
    finally:
        server.stop()


async def test_no_hsts_without_tls(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200 and "Strict-Transport-Security" not in response.headers


def test_the_context_is_tls_1_2_or_newer(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = server_context(Settings(tls_cert=str(cert), tls_key=str(key)))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(Settings()) is None


def test_a_certificate_without_its_key_is_refused_at_start(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    with pytest.raises(SettingsError, match="give both or neither"):
        Settings.load({"TOOMBOS_TLS_CERT": str(cert)})
    other_key = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-out", str(other_key)], check=True,
                   capture_output=True)
    for key, words in [(other_key, "matching key"), (tmp_path / "none.pem", "no file")]:
        result = subprocess.run(
            [sys.executable, "-m", "toombos_edge", "serve", "--data-dir", str(tmp_path / "d"),
             "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)],
            check=False, capture_output=True, text=True, env=clean_env(), timeout=30,
        )
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "TOOMBOS_TLS" in result.stderr
        assert not (tmp_path / "d").exists()  # refused before anything was opened
