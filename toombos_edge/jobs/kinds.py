"""Job kinds: what a handler is, what it is given, and the registry of kinds.

A kind is registered by the feature that owns it (documents register ``ingest``, content
registers ``generate`` and ``publish``), or by a third-party package through the entry point
group ``toombos_edge.handlers``: the entry point names a ``JobKind`` or a callable returning
an iterable of them.

A handler returns an :class:`Outcome` (``partial`` when some of its parts failed). Any
exception it raises fails the attempt, and the engine retries with backoff while attempts
remain: right for a sink that is down or answered 5xx. When retrying cannot help (a channel
with no webhook configured, a template that does not render, params that name nothing), it
raises :class:`PermanentFailure`: the attempt fails with no retry, its message is kept in the
job's ``errors``, and the job ends ``failed``, or ``partial`` when the exception carries an
``Outcome`` with ``partial=True`` (what the parts that worked produced). Plugins import it
from here, or subclass it for their own errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ..cache.protocol import Cache
from ..errors import Invalid
from ..records.job import Job

T = TypeVar("T")
ENTRY_POINT_GROUP = "toombos_edge.handlers"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler returns: results per part (channel), and whether some parts failed.

    Each entry of ``results`` is a part's object with a ``status`` (``success`` or
    ``failed``, the dashboard's words, or ``draft``: made, with nowhere configured to send
    it); what the kind produced otherwise (ids, sizes,
    flags) goes in ``output``. The engine moves any entry of ``results`` that is not such
    an object to ``output`` (:mod:`.results`).
    """

    results: Mapping[str, Any] = field(default_factory=dict)
    partial: bool = False
    document_id: str | None = None
    output: Mapping[str, Any] = field(default_factory=dict)


class PermanentFailure(Exception):
    """Raised by a handler: this attempt failed and trying again cannot succeed.

    The job ends at once, without the retries it has left: ``failed``, or ``partial`` when
    ``outcome`` says some parts succeeded (its results are kept on the job either way).
    """

    def __init__(self, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


ProgressFn = Callable[[float, str], Awaitable[None]]


@dataclass(slots=True)
class JobContext:
    """Everything a handler gets: its job, a logger, progress (throttled to the bus by the
    engine) and the content cache. Services, never a database handle: a handler that needs
    documents or content is built with those services by the feature that registers it
    (as ``ingest`` and ``generate`` are), so that it works on any storage backend."""

    job: Job
    log: logging.LoggerAdapter[logging.Logger]
    #: Where progress goes (the engine's reports, throttled to the bus); handlers call
    #: ``progress``.
    on_progress: ProgressFn
    cache: Cache | None = None

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    async def progress(self, percent: float, message: str = "") -> None:
        # Rounded as a person reads it: 33.333, not 33.333333333333336.
        await self.on_progress(round(max(0.0, min(100.0, percent)), 3), message)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy or blocking work in the default executor, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


Handler = Callable[[JobContext], Awaitable[Outcome | None]]
Validator = Callable[[dict[str, Any]], dict[str, Any]]


def _accept(params: dict[str, Any]) -> dict[str, Any]:
    return params


@dataclass(frozen=True, slots=True)
class JobKind:
    """A kind of job: its handler, its limits, and how its params are checked at submission."""

    name: str
    run: Handler
    timeout: float = 300.0
    max_attempts: int = 3
    validate: Validator = _accept  #: raises Invalid (422) on bad params; may normalise them


class KindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def __repr__(self) -> str:
        return f"<KindRegistry {sorted(self._kinds)}>"

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def register(self, kind: JobKind) -> None:
        self._kinds[kind.name] = kind

    def find(self, name: str) -> JobKind | None:
        """The kind, or None (a kind unregistered while its jobs wait)."""
        return self._kinds.get(name)

    def get(self, name: str) -> JobKind:
        """The kind, or ``Invalid`` (422): an unknown kind is refused at submission."""
        kind = self._kinds.get(name)
        if kind is None:
            raise Invalid(f"unknown job kind {name!r}", {"known_kinds": self.names()})
        return kind

    def load_entry_points(self) -> None:
        """Register the kinds that installed packages declare."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                target = entry.load()
                kinds = [target] if isinstance(target, JobKind) else list(target())
                for kind in kinds:
                    self.register(kind)
                log.info("loaded job kinds from %s", entry.value)
            except Exception:  # a broken plugin must not stop the server
                log.exception("could not load job kinds from entry point %s", entry.value)
