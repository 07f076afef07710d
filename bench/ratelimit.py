"""What the rate limits cost: the same server with them on and off, same data, same key.

In-process first: two apps (on, off) started in this process, and the request pipeline of
`GET /api/auth/whoami` (every step: correlation id, key, rate limits, handler, JSON,
headers, request metrics) called on the same request in a loop, no socket; rounds
alternate, CPU time per call, median of the rounds. That isolates the check from the
network's noise on a shared machine: the share it costs of a request over a socket is
smaller still.

Then over HTTP: two servers on the same data dir: "on" with rate limits at their defaults
except the admin key's quota, raised so far that the bench's key is never refused (every
request still goes through its bucket: the check runs, only the refusal never comes); "off"
with `--rate-limit false`. wrk asks `/health` (a probe: never limited, so the two should not
differ) and `GET /api/auth/whoami` (the cheapest route that needs a key) with the same admin
key. Servers on CPU 0, wrk on CPU 1; rounds alternate which server goes first. Prints one
line per round and one SUMMARY line per route: requests/s and server CPU per request, on
against off.

Usage: python -m bench.ratelimit [--rounds 6] [--seconds 5] [--connections 50]
                                [--calls 20000] [--no-wrk]
Goal (issue 17): the check costs under 2% of the requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bench.common import PY, ROOT, free_port, spread, start, stop, wait_url

GOAL = 0.02
ROUTES = {"health": "/health", "whoami": "/api/auth/whoami"}
#: The only settings the two servers differ by (flags, beside --data-dir and --port).
FLAGS = {"on": ("--rate-limit-admin", "1000000000"), "off": ("--rate-limit", "false")}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, key: str, seconds: int, connections: int, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one wrk run on CPU 1."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-H", f"Authorization: Bearer {key}", url]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    before = cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--no-wrk", action="store_true", help="the in-process loop only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.check_us = asyncio.run(in_process(Path(tmp), args))
    if args.no_wrk:
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        run_cli(data, "migrate")
        key = run_cli(data, "keys", "create", "--name", "bench", "--role", "admin")
        run(data, key, args)


async def in_process(tmp: Path, args: argparse.Namespace) -> float:
    """CPU µs per call of whoami's pipeline, on against off (the loop, no socket); returns
    the difference: what the check costs a request."""
    from toombos_edge.app import create_app
    from toombos_edge.appkeys import KEYS
    from toombos_edge.keys import Role
    from toombos_edge.settings import Settings

    runners, calls = {}, {}
    for who, (flag, value) in FLAGS.items():
        settings = Settings.load({}, overrides={"data_dir": str(tmp / who), "access_log": "false",
                                                flag.removeprefix("--").replace("-", "_"): value})
        app = create_app(settings)
        runners[who] = runner = web.AppRunner(app, handle_signals=False)
        with contextlib.redirect_stderr(io.StringIO()):  # the first admin key's notice
            await runner.setup()
        _key, secret = await app[KEYS].create("bench", Role.admin)
        request = make_mocked_request("GET", ROUTES["whoami"], app=app,
                                      headers={"Authorization": f"Bearer {secret}"})
        match = await app.router.resolve(request)
        match.add_app(app)  # as the application does before it calls the handler
        match.freeze()
        request._match_info = match
        calls[who] = (match.handler, request)
    try:
        per_call: dict[str, list[float]] = {"on": [], "off": []}
        for n in range(args.rounds):
            for who in (("on", "off") if n % 2 == 0 else ("off", "on")):
                handler, request = calls[who]
                began = time.process_time()
                for _ in range(args.calls):
                    await handler(request)
                per_call[who].append((time.process_time() - began) / args.calls * 1e6)
        on, off = statistics.median(per_call["on"]), statistics.median(per_call["off"])
        print(f"SUMMARY rate limits in-process, whoami's pipeline: on {on:.2f} us | off "
              f"{off:.2f} us per call | the check: {on - off:+.2f} us ({(on - off) / off:+.1%} "
              "of the pipeline alone; its share of a whole request is judged with wrk) | "
              f"{args.calls} calls x {args.rounds} rounds, access log off in both")
        return on - off
    finally:
        for runner in runners.values():
            await runner.cleanup()


def run_cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([PY, "-m", "toombos_edge", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return done.stdout.strip()


def run(data: Path, key: str, args: argparse.Namespace) -> None:
    ports = {who: free_port() for who in FLAGS}
    procs = {who: start([PY, "-m", "toombos_edge", "serve", "--data-dir", str(data),
                         "--port", str(ports[who]), *FLAGS[who]], cpu=0,
                        log=data.parent / f"{who}.log") for who in FLAGS}
    try:
        bases = {who: f"http://127.0.0.1:{port}" for who, port in ports.items()}
        for who, proc in procs.items():
            wait_url(bases[who] + "/ready", proc)
            for path in ROUTES.values():  # warm-up
                wrk(bases[who] + path, key, 1, args.connections, proc.pid)
        measure(bases, {who: proc.pid for who, proc in procs.items()}, key, args)
    finally:
        for proc in procs.values():
            stop(proc)


def measure(bases: dict[str, str], pids: dict[str, int], key: str,
            args: argparse.Namespace) -> None:
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    print(f"{args.seconds}s x {args.connections} connections per run; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'round':>5} {'route':<7} {'limits':<6} {'rps':>8} {'cpu/req':>9}")
    for n in range(args.rounds):
        for route, path in ROUTES.items():
            for who in (("on", "off") if n % 2 == 0 else ("off", "on")):
                rps, cpu = wrk(bases[who] + path, key, args.seconds, args.connections,
                               pids[who])
                rates.setdefault((route, who), []).append(rps)
                cpus.setdefault((route, who), []).append(cpu)
                print(f"{n + 1:>5} {route:<7} {who:<6} {rps:>8.0f} {cpu:>7.1f}us", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    settings = (f"on: {' '.join(FLAGS['on'])}, off: {' '.join(FLAGS['off'])}, every other "
                f"setting default; {args.connections} connections, {args.seconds}s x "
                f"{args.rounds} rounds, servers on CPU 0, wrk on CPU 1")
    for route, path in ROUTES.items():
        on, off = rates[(route, "on")], rates[(route, "off")]
        cost = [1 - a / b for a, b in zip(on, off, strict=True)]
        cpu_on, cpu_off = cpus[(route, "on")], cpus[(route, "off")]
        verdict = "met" if statistics.median(cost) < GOAL else "MISSED"
        # The steadier figure on a shared machine: the check's CPU (in-process) over what a
        # whole request costs the server (over HTTP, limits off).
        share = args.check_us / statistics.median(cpu_off)
        if route == "whoami":
            print(f"SUMMARY rate limit check over a whole request: {args.check_us:.2f} us of "
                  f"{statistics.median(cpu_off):.1f} us server CPU per whoami request = "
                  f"{share:.2%} | goal < {GOAL:.0%}: {'met' if share < GOAL else 'MISSED'}")
        print(f"SUMMARY rate limits on {path}: on {statistics.median(on):,.0f} rps | off "
              f"{statistics.median(off):,.0f} rps | cost {statistics.median(cost):+.1%} of "
              f"rps per round {spread([c * 100 for c in cost])} % | cpu/req on "
              f"{statistics.median(cpu_on):.1f} us, off {statistics.median(cpu_off):.1f} us | "
              f"goal < {GOAL:.0%}: {verdict} | {settings}")


if __name__ == "__main__":
    main()
