"""Five-channel generation over HTTP: documents per second, cold and from the cache,
and the p99 of /health while it runs.

Each round starts the real server on a fresh data dir (pinned to CPU 0), then from this
process (CPU 1): /health alone (idle p99); N generate jobs of distinct documents for the
five channels (cold: every render is a cache miss); the same N again (cached: every render
a hit). A job counts when GET /api/v2/jobs/{id} shows it completed; /health is sampled
every 10 ms on its own connection all the while. The peer, measured in the same round, is
the ceiling: the same renderer called in this process with no server, no database and no
cache (documents/s of bare rendering). The server runs in its default configuration
(access log on, JSON logs).

Usage: python -m bench.generate [--rounds 3] [--docs 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import PY, ROOT, free_port, spread, start, stop, wait_url
from toombos_edge.content.channels import ALL_CHANNELS
from toombos_edge.content.render import Renderer, RenderOptions
from toombos_edge.content.source import inline_source
from toombos_edge.content.templates import TemplateLibrary

FIXTURE = (ROOT / "tests" / "fixtures" / "launch.md").read_text()
CHANNELS = [c.value for c in ALL_CHANNELS]
TERMINAL = {"completed", "partial", "failed", "cancelled"}
HEALTH_EVERY = 0.010
JOB_DEADLINE = 120.0


def document(n: int) -> dict[str, Any]:
    text = FIXTURE.replace("three months", f"{n + 3} months") + f"\n\nRelease {n}.\n"
    return {"title": f"Offline sync, release {n}", "text": text,
            "tags": ["offline sync", "release notes"], "channels": CHANNELS,
            "content_type": "announcement", "template_style": "modern", "tone": "casual"}


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0


async def sample_health(base: str, stop_at: asyncio.Event, out: list[float]) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop_at.is_set():
            began = time.perf_counter()
            async with session.get(f"{base}/health") as response:
                await response.read()
            out.append(time.perf_counter() - began)
            await asyncio.sleep(HEALTH_EVERY)


async def run_one(session: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> str:
    async with session.post(f"{base}/api/v2/content/generate", json=body) as response:
        job = await response.json()
        if response.status != 202:
            raise RuntimeError(f"generate answered {response.status}: {job}")
    deadline = time.perf_counter() + JOB_DEADLINE
    delay = 0.005
    while time.perf_counter() < deadline:
        async with session.get(f"{base}/api/v2/jobs/{job['job_id']}") as response:
            status = (await response.json())["status"]
        if status in TERMINAL:
            return str(status)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    raise RuntimeError(f"job {job['job_id']} did not finish")


async def generation(base: str, key: str, docs: list[dict[str, Any]],
                     concurrency: int) -> tuple[float, float, list[str]]:
    """(documents/s, /health p99 ms, statuses) for one pass over ``docs``."""
    health: list[float] = []
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_health(base, done, health))
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        async def one(body: dict[str, Any]) -> str:
            async with gate:
                return await run_one(session, base, body)

        began = time.perf_counter()
        statuses = await asyncio.gather(*(one(body) for body in docs))
        elapsed = time.perf_counter() - began
    done.set()
    await sampler
    return len(docs) / elapsed, p99(health), list(statuses)


async def idle_health(base: str, seconds: float) -> float:
    samples: list[float] = []
    done = asyncio.Event()
    task = asyncio.create_task(sample_health(base, done, samples))
    await asyncio.sleep(seconds)
    done.set()
    await task
    return p99(samples)


def bare_rate(docs: list[dict[str, Any]]) -> float:
    renderer = Renderer(TemplateLibrary())
    options = RenderOptions(link="http://127.0.0.1/site/x")
    began = time.perf_counter()
    for body in docs:
        source = inline_source(body["title"], body["text"], tuple(body["tags"]))
        for channel in ALL_CHANNELS:
            renderer.render(source, channel, options)
    return len(docs) / (time.perf_counter() - began)


async def one_round(docs: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start([PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir",
                      str(Path(tmp) / "data")], cpu=0)  # the default configuration
        try:
            base = f"http://127.0.0.1:{port}"
            wait_url(f"{base}/ready", proc)
            key = (Path(tmp) / "data" / "admin.key").read_text().strip()
            idle = await idle_health(base, 1.0)
            cold, cold_p99, statuses = await generation(base, key, docs, concurrency)
            cached, cached_p99, again = await generation(base, key, docs, concurrency)
            if set(statuses) | set(again) != {"completed"}:
                raise RuntimeError(f"not every job completed: {set(statuses) | set(again)}")
        finally:
            stop(proc)
    return {"bare": bare_rate(docs), "cold": cold, "cached": cached, "idle_p99": idle,
            "cold_p99": cold_p99, "cached_p99": cached_p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    docs = [document(n) for n in range(args.docs)]
    rows = []
    print(f"{'round':>5} {'bare doc/s':>10} {'cold doc/s':>10} {'cached':>8} {'cold/bare':>9} "
          f"{'cached/cold':>11} {'health p99 ms idle/cold/cached':>31}")
    for n in range(args.rounds):
        row = asyncio.run(one_round(docs, args.concurrency))
        rows.append(row)
        print(f"{n + 1:>5} {row['bare']:>10.1f} {row['cold']:>10.1f} {row['cached']:>8.1f} "
              f"{row['cold'] / row['bare']:>9.2f} {row['cached'] / row['cold']:>11.2f} "
              f"{row['idle_p99']:>10.1f} / {row['cold_p99']:>6.1f} / {row['cached_p99']:>6.1f}")
    print(f"settings: server: default configuration (access log on); {len(docs)} documents x "
          f"5 channels, {args.concurrency} at a time, {args.rounds} rounds; server on CPU 0")
    bare = statistics.median(r["bare"] for r in rows)
    idle = statistics.median(r["idle_p99"] for r in rows)
    for name in ("cold", "cached"):
        rate = statistics.median(r[name] for r in rows)
        ratios = [r[name] / r["bare"] for r in rows]
        p99 = statistics.median(r[name + "_p99"] for r in rows)
        print(f"SUMMARY generate {name:<6} {rate:.1f} doc/s | bare rendering {bare:.1f} doc/s"
              f" | ratio {spread(ratios)} | no ratio goal | /health p99 {p99:.1f} ms "
              f"(idle {idle:.1f} ms)")
    print("median [min-max] per round:")
    for name in ("cold", "cached", "cold_p99", "cached_p99", "idle_p99"):
        print(f"  {name:<11} {spread([r[name] for r in rows])}")
    print(f"  cold/bare   {spread([r['cold'] / r['bare'] for r in rows])}")
    print(f"  cached/cold {spread([r['cached'] / r['cold'] for r in rows])}")
    print(f"  p99 cold/idle {statistics.median(r['cold_p99'] / r['idle_p99'] for r in rows):.2f}")


if __name__ == "__main__":
    main()
