"""The seed's curl examples, run as written by the real curl against a real server process."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ServerProcess
from support import eventually

from toombos_edge.documents.ingest import NOTHING_SENT

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")

# From seeds/003 ("Using cURL"), verbatim but for host, port and token.
SEED_JSON = r"""curl -X POST "http://localhost:8000/api/ingest" \
     -H "Authorization: Bearer REPLACE_WITH_PROD_TOKEN" \
     -H "Content-Type: application/json" \
     -d '{"metadata": "{\"test\":\"data\"}"}'"""
SEED_FILE = r"""curl -X POST "http://localhost:8000/api/ingest" \
     -H "Authorization: Bearer REPLACE_WITH_PROD_TOKEN" \
     -F "file=@test.txt" \
     -F "metadata={\"source\":\"curl\"}" """
SEED_STATUS = r"""curl "http://localhost:8000/api/status/JOB_ID" \
     -H "Authorization: Bearer REPLACE_WITH_PROD_TOKEN" """
# What PowerShell's Invoke-RestMethod -Method Post -Body @{ metadata = "{}" } sends: the
# hashtable form-encoded (application/x-www-form-urlencoded).
POWERSHELL_EQUIVALENT = r"""curl -X POST "http://localhost:8000/api/ingest" \
     -H "Authorization: Bearer REPLACE_WITH_PROD_TOKEN" \
     --data-urlencode "metadata={}" """
TERMINAL = {"completed", "partial", "failed", "cancelled"}


@dataclass
class Server:
    base: str
    key: str
    data_dir: Path
    workdir: Path

    def run(self, command: str, job_id: str = "") -> dict[str, Any]:
        """Run a seed command in bash (in ``workdir``); returns the JSON it printed."""
        command = (command.replace("http://localhost:8000", self.base)
                   .replace("REPLACE_WITH_PROD_TOKEN", self.key).replace("JOB_ID", job_id))
        out = subprocess.run(["bash", "-c", command + " -sS"], cwd=self.workdir, check=True,
                             capture_output=True, timeout=60)
        return dict(json.loads(out.stdout))

    def wait_job(self, job_id: str, deadline: float = 30.0) -> dict[str, Any]:
        def job() -> dict[str, Any] | None:  # polling a real server, as the seed's client does
            found = self.run(SEED_STATUS, job_id)
            return found if found["status"] in TERMINAL else None

        return eventually(job, deadline, f"job {job_id} to finish")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("curl")
    process = ServerProcess(root / "data", env={"TOOMBOS_ACCESS_LOG": "false",
                                                "TOOMBOS_MAX_UPLOAD_MB": "1"}).start()
    try:
        yield Server(process.base, process.admin_key(), process.data_dir, root)
    finally:
        process.close()


def test_seed_json_example(server: Server) -> None:
    accepted = server.run(SEED_JSON)
    assert accepted["job_id"].startswith("job_")
    assert accepted["status"] in {"pending", "in_progress", "completed"}
    job = server.wait_job(accepted["job_id"])
    assert job["status"] == "completed", job
    assert job["metadata"] == {"test": "data"}
    # Nothing was sent to make a document of: the job says so, and makes none.
    assert job["output"] == {"document_id": None, "reason": NOTHING_SENT}
    assert job["document_id"] == ""  # the dashboard calls .toLowerCase() on it


def test_seed_file_example(server: Server) -> None:
    (server.workdir / "test.txt").write_text("Hello from the seed's test file.\n")
    accepted = server.run(SEED_FILE)
    assert accepted["upload"]["filename"] == "test.txt"
    job = server.wait_job(accepted["job_id"])
    assert job["status"] == "completed", job
    document = server.run(
        f'curl "{server.base}/api/documents/{job["output"]["document_id"]}" '
        '-H "Authorization: Bearer REPLACE_WITH_PROD_TOKEN"')
    assert document["text"] == "Hello from the seed's test file."
    assert document["metadata"] == {"source": "curl"}
    again = server.wait_job(server.run(SEED_FILE)["job_id"])
    assert again["output"]["duplicate"] is True
    assert again["output"]["document_id"] == job["output"]["document_id"]


def test_powershell_form_body(server: Server) -> None:
    accepted = server.run(POWERSHELL_EQUIVALENT)
    assert server.wait_job(accepted["job_id"])["status"] == "completed"


def test_curl_sees_the_413(server: Server) -> None:
    (server.workdir / "big.bin").write_bytes(b"z" * (3 << 20))
    answer = server.run(SEED_FILE.replace("test.txt", "big.bin"))
    assert answer["error"]["status"] == 413
    assert list((server.data_dir / "uploads").iterdir()) == []


async def test_seed_websocket_status_stream(server: Server) -> None:
    """wscat -c "ws://localhost:8000/ws/status/JOB_ID?token=..." after the file example."""
    (server.workdir / "test.txt").write_text("Watched over a WebSocket.\n")
    job_id = server.run(SEED_FILE)["job_id"]
    url = f"{server.base.replace('http', 'ws')}/ws/status/{job_id}?token={server.key}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        statuses = [json.loads(message.data) async for message in ws
                    if message.type == aiohttp.WSMsgType.TEXT]
        assert ws.close_code == 1000
    jobs = [event["job"] for event in statuses if "job" in event]
    assert jobs and all(job["job_id"] == job_id for job in jobs)
    assert jobs[-1]["status"] == "completed"
    assert jobs[-1]["output"]["document_id"].startswith("doc_")
