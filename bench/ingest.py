"""Ingest bench: stream a large upload to POST /api/ingest over loopback.

Starts the real server as a subprocess, generates a file of random bytes in a temporary
directory (deleted at the end), and per round:

* times ``sha256sum FILE`` (the peer: reading and hashing the same bytes on this machine),
  and Python's hashlib over the same file (OpenSSL, what the server itself uses),
* uploads the file with ``curl -F file=@FILE`` and reports MB/s and the ratio to the peer,
* samples the server's RSS every 5 ms (peak growth over its RSS before the upload),
* polls ``/health`` every 20 ms from another thread during the upload (p50/p99/max), and
  for 5 s before it with nothing else running (the idle p99: what the machine's load alone
  costs).

Goals (issue 5): upload at least half the sha256sum rate; under 30 MB memory growth;
/health p99 under 50 ms during the upload. Usage: ``python bench/ingest.py [--mb 1024]
[--rounds 2]``. The machine is shared and noisy: read the per-round ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder's http.py (the HTTP bench) would shadow the standard library's http package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IDLE_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_file(path: Path, mb: int) -> None:
    with path.open("wb") as out:
        for _ in range(mb // 16):
            out.write(os.urandom(16 << 20))
        out.write(os.urandom((mb % 16) << 20))


def start_server(data_dir: Path, port: int, max_upload_mb: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}
    env.update(TOOMBOS_MAX_UPLOAD_MB=str(max_upload_mb), TOOMBOS_ACCESS_LOG="false",
               TOOMBOS_LOG_LEVEL="warning")
    return subprocess.Popen(
        [sys.executable, "-m", "toombos_edge", "serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server not ready in time")


class Sampler(threading.Thread):
    """Samples something every ``interval`` seconds until stopped."""

    def __init__(self, interval: float, sample: object) -> None:
        super().__init__(daemon=True)
        self.interval, self.sample, self.values = interval, sample, []  # type: ignore[var-annotated]
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.values.append(self.sample())  # type: ignore[operator]
            self.stopping.wait(self.interval)

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join()
        return self.values


def health_probe(port: int) -> object:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def probe() -> float:
        began = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        return (time.perf_counter() - began) * 1000

    return probe


def sha256sum_rate(path: Path, mb: int) -> float:
    began = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, stdout=subprocess.DEVNULL)
    return mb / (time.perf_counter() - began)


HASHLIB_PEER = """
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb") as source:
    while chunk := source.read(1 << 20):
        digest.update(chunk)
"""


def hashlib_rate(path: Path, mb: int) -> float:
    """A second peer: OpenSSL's SHA-256 (what the server uses) reading the same file."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", HASHLIB_PEER, str(path)], check=True)
    return mb / (time.perf_counter() - began)


def upload(port: int, key: str, path: Path) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", f"http://127.0.0.1:{port}/api/ingest",
         "-H", f"Authorization: Bearer {key}", "-F", f"file=@{path};type=application/octet-stream",
         "-F", 'metadata={"source":"bench"}'],
        check=True, capture_output=True,
    )
    return time.perf_counter() - began, json.loads(out.stdout)


def wait_job(port: int, key: str, job_id: str, deadline: float = 300) -> dict[str, object]:
    end = time.monotonic() + deadline
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.monotonic() < end:
        conn.request("GET", f"/api/status/{job_id}", headers={"Authorization": f"Bearer {key}"})
        job = json.loads(conn.getresponse().read())
        if job.get("status") in {"completed", "partial", "failed", "cancelled"}:
            return dict(job)
        time.sleep(0.2)
    raise RuntimeError("job did not finish in time")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def one_round(port: int, key: str, pid: int, path: Path, mb: int) -> dict[str, float]:
    idle = Sampler(0.02, health_probe(port))  # /health on the same machine, no upload
    idle.start()
    time.sleep(IDLE_SECONDS)
    idle_latencies = idle.stop()
    peer = sha256sum_rate(path, mb)
    openssl = hashlib_rate(path, mb)
    base, cpu = rss_kb(pid), cpu_seconds(pid)
    memory = Sampler(0.005, lambda: rss_kb(pid))
    health = Sampler(0.02, health_probe(port))
    memory.start()
    health.start()
    seconds, answer = upload(port, key, path)
    server_cpu = cpu_seconds(pid) - cpu
    latencies, rss = health.stop(), memory.stop()
    if "job_id" not in answer:
        raise RuntimeError(f"upload refused: {answer}")
    job = wait_job(port, key, str(answer["job_id"]))
    rate = mb / seconds
    return {
        "upload_mb_s": rate, "sha256sum_mb_s": peer, "ratio": rate / peer,
        "hashlib_mb_s": openssl, "ratio_hashlib": rate / openssl,
        "server_cpu_share": server_cpu / seconds, "rss_growth_mb": (max(rss) - base) / 1024,
        "idle_health_p99_ms": percentile(idle_latencies, 99), "health_n": len(latencies),
        "health_p50_ms": statistics.median(latencies), "health_p99_ms": percentile(latencies, 99),
        "health_max_ms": max(latencies), "job_status": job["status"],  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("curl") is None:  # the client; installed as the brief allows (root)
        subprocess.run(["apt-get", "update", "-q"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "curl"], check=False)
    for tool in ("curl", "sha256sum"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="toombos-bench-ingest-") as tmp:
        root = Path(tmp)
        path = root / "bench.bin"
        make_file(path, args.mb)
        port = free_port()
        proc = start_server(root / "data", port, max_upload_mb=args.mb + 64)
        try:
            wait_ready(port, proc)
            key = (root / "data" / "admin.key").read_text().strip()
            print(f"file: {args.mb} MiB of random bytes; server pid {proc.pid}")
            for number in range(1, args.rounds + 1):
                result = one_round(port, key, proc.pid, path, args.mb)
                print(f"round {number}: " + ", ".join(
                    f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in result.items()), flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
