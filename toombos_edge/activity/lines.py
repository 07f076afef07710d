"""What each bus event becomes in the activity log: zero, one or two entries.

An entry is what a line says before :func:`render` makes it the JSON line: when, which
type, who (the actor), the correlation id, the target (job, document, content or key id),
the outcome and the event's own data. Only facts chosen here go into a line, never a
request's headers or a job's params: no key, token, password or ``Authorization`` value
can reach the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .. import events as ev
from ..ids import iso
from ..logs import Actor
from ..records.job import Job, JobStatus

OK, ERROR, REFUSED, PARTIAL, CANCELLED = "ok", "error", "refused", "partial", "cancelled"
SYSTEM = "system"  #: the actor of what the server does by itself


#: One line before it is rendered: (ms, type, actor id, actor name, ip, correlation id,
#: target, outcome, data). The actor id is the key's id, else the client IP; None (with
#: name and ip) is the server.
Entry = tuple[int, str, str | None, str | None, str | None, str | None, str | None, str,
              dict[str, Any]]


def entry(ts: int, type_: str, actor: Actor | None, cid: str | None, target: Any, *,
          outcome: str = OK, data: dict[str, Any]) -> Entry:
    if actor is None:
        return (ts, type_, None, None, None, cid, target, outcome, data)
    return (ts, type_, actor.key_id or actor.ip, actor.name, actor.ip, cid, target, outcome,
            data)


def render(entry: Entry) -> str:
    """The JSON line of ``entry``, keys in the README's order, without the newline.

    Text, decoded at once: the table stores text, and a batch that holds on to orjson's
    bytes objects instead costs three times as much per line (measured)."""
    ts, type_, actor_id, name, ip, cid, target, outcome, data = entry
    return orjson.dumps(
        {"ts": iso(ts), "type": type_,
         "actor": {"id": SYSTEM if actor_id is None else actor_id, "name": name},
         "ip": ip, "correlation_id": cid, "target": target, "outcome": outcome, "data": data},
        default=str,  # a value orjson cannot encode (a Path, say) becomes its text
    ).decode()


#: (event, the request's actor or None, the request's correlation id or None) → entries
Describe = Callable[[ev.Event, Actor | None, str | None], list[Entry]]


def describe(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    """The entries an event makes (none for those not worth a line: progress, stats)."""
    make = _BY_TYPE.get(event.type)
    return [] if make is None else make(event, who, cid)


def _job(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    job = event.subject
    if not isinstance(job, Job):
        return []
    types = _job_types(event, job)
    if not types:
        return []
    # The status as the enum member: orjson writes its value, without the enum's lookup.
    data: dict[str, Any] = {"kind": job.kind, "status": job.status,
                            "attempts": job.attempts, "max_attempts": job.max_attempts}
    if job.last_error is not None and job.status is not JobStatus.in_progress:
        data["error"] = job.last_error
    if job.document_id is not None:
        data["document_id"] = job.document_id
    # The submitted line is written after its batch commits, outside the request: the job
    # carries its submitter. What follows is the server's own unless a request made it (a
    # cancel, a retry), also a start written with the submission (a job handed to an idle
    # worker): the same lines whether the job was handed over or claimed.
    first = who or (job.actor if event.type == ev.JOB_CREATED else None)
    cid = job.correlation_id or cid
    ts, target = event.timestamp, job.id
    if first is None:  # most job lines: written by the server itself
        return [(ts, type_, None, None, None, cid, target, outcome, data)
                for type_, outcome in types]
    return [entry(ts, type_, first if n == 0 else who, cid, target, outcome=outcome, data=data)
            for n, (type_, outcome) in enumerate(types)]


def _job_types(event: ev.Event, job: Job) -> list[tuple[str, str]]:
    status = job.status
    if event.type == ev.JOB_CREATED:
        first = ("ingestion.accepted" if job.kind == "ingest" else "job.submitted", OK)
        # A fresh job handed straight to an idle worker is announced once, already started.
        return [first, ("job.started", OK)] if status is JobStatus.in_progress else [first]
    if event.type == ev.JOB_UPDATE:
        if event.note == ev.STARTED:
            return [("job.started", OK)]
        if event.note == ev.RETRIED or (status is JobStatus.pending and job.started_at
                                         is not None and job.last_error is not None):
            return [("job.retried", OK)]  # by request, or after a failed attempt
        return []  # progress, or a job given back to the queue unstarted (pause, stop)
    if status is JobStatus.failed:  # "dead": every attempt used; "failed": a final error
        return [("job.dead" if job.attempts >= job.max_attempts else "job.failed", ERROR)]
    end = _ENDS.get(status)
    return [] if end is None else [end]


_ENDS = {
    JobStatus.completed: ("job.completed", OK),
    JobStatus.partial: ("job.partial", PARTIAL),
    JobStatus.cancelled: ("job.cancelled", CANCELLED),
}


def _data(event: ev.Event) -> dict[str, Any]:
    data: dict[str, Any] = event.body.get("data", {})
    return data


def _simple(type_: str, target_key: str | None = None, outcome: str = OK) -> Describe:
    """An event whose data goes into the line as it is, the actor being the request's."""

    def make(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
        data = _data(event)
        target = data.get(target_key) if target_key else None
        return [entry(event.timestamp, type_, who, cid, target, outcome=outcome,
                      data=data)]

    return make


def _unless_noticed(make: Describe) -> Describe:
    """No line for a change a node only found in the database: its maker wrote one."""

    def describe_made(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
        return [] if event.note == ev.NOTICED else make(event, who, cid)

    return describe_made


def _error(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    """A 5xx (its requester is ``who``) or a failed job (the server's own)."""
    data = dict(_data(event))
    data.pop("timestamp", None)  # the line's own ts says it
    return [entry(event.timestamp, "error", who, cid, data.get("job_id"), outcome=ERROR,
                  data=data)]


def _socket(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    """A socket names its peer itself: it is closed long after the upgrade's request."""
    data = dict(_data(event))
    action = str(data.pop("action", "closed"))
    ip, key_id = data.pop("ip", None), data.pop("key_id", None)
    actor = who if ip is None else Actor(str(ip), key_id)
    outcome = REFUSED if action == "refused" else OK
    return [entry(event.timestamp, f"ws.{action}", actor, cid, data.pop("target", None),
                  outcome=outcome, data=data)]


def _cache(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    data = dict(_data(event))
    data.pop("actor", None)  # the request's actor says it better
    type_ = "cache.cleared" if data.pop("cleared", False) else "cache.invalidated"
    return [entry(event.timestamp, type_, who, cid, None, data=data)]


def _critical(event: ev.Event, who: Actor | None, cid: str | None) -> list[Entry]:
    data = dict(_data(event))
    operation = str(data.pop("operation", "operation"))
    ids = data.get("content_ids")
    target = data.get("content_id") or (ids[0] if isinstance(ids, list) and ids else None)
    return [entry(event.timestamp, f"critical.{operation}", who, cid, target, data=data)]


_BY_TYPE: dict[str, Describe] = {
    **dict.fromkeys(ev.JOB_EVENTS, _job),
    ev.INGESTION_COMPLETE: _simple("ingestion.finished", "document_id"),
    ev.QUERY_COMPLETE: _simple("query"),
    ev.ERROR: _error,
    ev.AUTH_REFUSED: _simple("auth.refused", outcome=REFUSED),
    ev.RATE_LIMITED: _simple("rate.limited", outcome=REFUSED),
    ev.KEY_CREATED: _simple("key.created", "key_id"),
    ev.KEY_REVOKED: _unless_noticed(_simple("key.revoked", "key_id")),
    ev.WS_CONNECTION: _socket,
    ev.CACHE_INVALIDATED: _cache,
    ev.CONTENT_PUBLISHED: _simple("content.published", "content_id"),
    ev.ANNOUNCEMENT: _simple("announcement"),
    ev.CRITICAL_OPERATION: _critical,
    ev.QUEUE_PAUSED: _simple("queue.paused"),
    ev.QUEUE_RESUMED: _simple("queue.resumed"),
    ev.RESTART_REQUESTED: _simple("restart.requested"),
    ev.PROJECT_CREATED: _simple("project.created", "project_id"),
    ev.PROJECT_UPDATED: _simple("project.updated", "project_id"),
    ev.PROJECT_DELETED: _simple("project.deleted", "project_id"),
}

#: Every line type, for the README and the tests.
TYPES = (
    "job.submitted", "job.started", "job.completed", "job.partial", "job.failed", "job.dead",
    "job.cancelled", "job.retried", "ingestion.accepted", "ingestion.finished", "query",
    "error", "auth.refused", "rate.limited", "key.created", "key.revoked", "ws.accepted",
    "ws.refused", "ws.closed", "cache.invalidated", "cache.cleared", "content.published",
    "announcement", "critical.emergency_publish", "critical.rollback", "queue.paused",
    "queue.resumed", "restart.requested", "project.created", "project.updated",
    "project.deleted",
)
