"""Rendering through the cache: every channel of a source in one pass.

Cached bodies are read first; the channels that missed are rendered together on the one
render thread (one hop off the loop per job, not one per channel) and then cached. A
channel whose render fails gets its exception back, so that the others still go on.

Rendering is pure Python and holds the GIL, so more threads would not render faster; they
would only take more turns from the event loop. One thread keeps the loop's wait for the
GIL to one switch interval, which is what keeps ``/health`` quick during a generation storm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from ..cache.protocol import Cache
from .channels import Channel
from .render import Renderer, RenderOptions, cache_key, cache_tags
from .source import Source

log = logging.getLogger(__name__)

Rendered = dict[str, Any] | Exception


class CachedRenderer:
    """A renderer in front of which sits the content cache (when there is one)."""

    def __init__(self, renderer: Renderer, cache: Cache | None = None) -> None:
        self.renderer = renderer
        self.cache = cache
        self.rendered = self.cache_hits = 0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="render")

    def close(self) -> None:
        """Let the render in progress finish, then stop the render thread."""
        self._thread.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"<CachedRenderer rendered={self.rendered} cache_hits={self.cache_hits}>"

    async def render(
        self, source: Source, channel: Channel, options: RenderOptions
    ) -> dict[str, Any]:
        """One channel's body; raises what its render raised."""
        body = (await self.render_many(source, [channel], options))[channel]
        if isinstance(body, Exception):
            raise body
        return body

    async def render_many(
        self, source: Source, channels: Sequence[Channel], options: RenderOptions
    ) -> dict[Channel, Rendered]:
        """Each channel's body (or the exception its render raised), in ``channels`` order."""
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self._thread, self.renderer.templates.version)
        keys = {c: cache_key(source, c, options, version) for c in channels}
        found: dict[Channel, Rendered] = await self._cached(keys)
        missing = [c for c in channels if c not in found]
        if missing:
            fresh = await loop.run_in_executor(
                self._thread, self._render_each, source, missing, options)
            for channel, body in fresh.items():
                found[channel] = body
                if not isinstance(body, Exception):
                    await self._store(keys[channel], body, source, channel, options)
        return {c: found[c] for c in channels}

    async def _cached(self, keys: dict[Channel, str]) -> dict[Channel, Rendered]:
        found: dict[Channel, Rendered] = {}
        if self.cache is None:
            return found
        for channel, key in keys.items():
            raw = await self.cache.get(key)
            if raw is not None:
                found[channel] = orjson.loads(raw)
                self.cache_hits += 1
        return found

    async def _store(
        self, key: str, body: dict[str, Any], source: Source, channel: Channel,
        options: RenderOptions,
    ) -> None:
        self.rendered += 1
        if self.cache is not None:
            await self.cache.set(key, orjson.dumps(body), cache_tags(source, channel, options))

    def _render_each(
        self, source: Source, channels: list[Channel], options: RenderOptions
    ) -> dict[Channel, Rendered]:
        """In a worker thread: render each channel, keeping a failure to its channel."""
        out: dict[Channel, Rendered] = {}
        for channel in channels:
            try:
                out[channel] = self.renderer.render(source, channel, options)
            except Exception as exc:  # an override template may be broken; others go on
                log.warning("rendering %s failed: %s", channel.value, exc)
                out[channel] = exc
        return out
