"""An event as it travels between nodes (a NOTIFY payload), and as it arrives there.

A payload is one JSON object: ``{"o": origin, "s": seq, "ts": ms, "a": [kind, id],
"u": updated_at, "e": the event}`` where ``e`` is the very bytes the hub sends to sockets
(encoded once), ``a`` is present for a personal event and ``u`` (the job's
``updated_at``, ms) for a job event made from a job. By reference, a job event too large
for a payload is ``{"o", "s", "ts", "a", "u", "t": type, "j": job id}``: the receiver reads
the job itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .events import JOB_EVENTS, Address, Event
from .records.job import Job

JobState = tuple[int, str]  #: (updated_at, status): one written state of a job


class RemoteEvent(Event):
    """An event another node published, re-published here (or a caught-up job state).

    Its body is JSON, never a job object (``subject`` is None): subscribers that count
    jobs from the object (the metrics) count each job on its own node only.
    """

    __slots__ = ("origin", "seq")

    def __init__(self, type_: str, body: dict[str, Any], timestamp: int,
                 address: Address | None, *, origin: str, seq: int) -> None:
        super().__init__(type_, body, timestamp, address)
        self.origin = origin  #: "<node id>/<run>" of the sender, or "catch-up"
        self.seq = seq  #: its number in the origin's sequence (0 for a catch-up)

    @classmethod
    def of_job(cls, type_: str, job: Job, timestamp: int, address: Address | None = None,
               *, origin: str, seq: int = 0) -> RemoteEvent:
        return cls(type_, {"job": job.to_json()}, timestamp, address, origin=origin, seq=seq)


def is_remote(event: Event) -> bool:
    """True for an event that came from another node (its own node logged it already)."""
    return isinstance(event, RemoteEvent)


def job_state(event: Event) -> tuple[str, JobState] | None:
    """The job id and state of an event made from a job object; None otherwise."""
    job = event.subject
    if isinstance(job, Job):
        return job.id, (job.updated_at, job.status.value)
    return None


def _head(origin: str, seq: int, event: Event) -> dict[str, Any]:
    head: dict[str, Any] = {"o": origin, "s": seq, "ts": event.timestamp}
    if event.address is not None:
        head["a"] = list(event.address)
    if (state := job_state(event)) is not None:
        head["u"] = state[1][0]
    return head


def encode(origin: str, seq: int, event: Event) -> bytes:
    """The whole event; raises TypeError or orjson.JSONEncodeError as ``event.encoded``."""
    return orjson.dumps({**_head(origin, seq, event), "e": orjson.Fragment(event.encoded)})


def encode_reference(origin: str, seq: int, event: Event) -> bytes | None:
    """A job event by its job's id; None for an event that names no job."""
    state = job_state(event)
    job_id = state[0] if state else (event.body.get("job") or {}).get("job_id")
    if event.type not in JOB_EVENTS or not job_id:
        return None
    return orjson.dumps({**_head(origin, seq, event), "t": event.type, "j": str(job_id)})


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded payload: the event itself, or the reference to read it by."""

    origin: str
    seq: int
    timestamp: int
    address: Address | None
    event: RemoteEvent | None  #: None: by reference (``type`` and ``job_id``)
    type: str
    job_id: str | None
    state: JobState | None  #: a job event's state (known once read, for a reference)

    def resolve(self, job: Job) -> tuple[RemoteEvent, JobState]:
        """The event of a reference, from the job read."""
        event = RemoteEvent.of_job(self.type, job, self.timestamp, self.address,
                                   origin=self.origin, seq=self.seq)
        return event, (job.updated_at, job.status.value)


def decode(payload: str) -> Message:
    """Raises ValueError (orjson.JSONDecodeError), KeyError or TypeError on a bad payload."""
    msg = orjson.loads(payload)
    origin, seq, timestamp = str(msg["o"]), int(msg["s"]), int(msg["ts"])
    address = (str(msg["a"][0]), str(msg["a"][1])) if "a" in msg else None
    if "j" in msg:
        return Message(origin, seq, timestamp, address, None, str(msg["t"]), str(msg["j"]),
                       None)
    body = dict(msg["e"])
    type_ = str(body.pop("type"))
    body.pop("timestamp", None)
    event = RemoteEvent(type_, body, timestamp, address, origin=origin, seq=seq)
    job = body.get("job")
    if type_ in JOB_EVENTS and isinstance(job, dict) and "u" in msg:
        job_id = str(job["job_id"])
        return Message(origin, seq, timestamp, address, event, type_, job_id,
                       (int(msg["u"]), str(job["status"])))
    return Message(origin, seq, timestamp, address, event, type_, None, None)
