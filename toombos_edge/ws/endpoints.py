"""The WebSocket endpoints, and what a client may say on them.

``/ws/jobs`` (job events; ``subscribe``/``unsubscribe`` by ``job_id``, ``*`` for all),
``/ws/status/{job_id}`` (one job, current state first, closed with 1000 when it ends),
``/ws/dashboard`` and ``/api/v1/ws/dashboard`` (``connection_ack``, every event,
``stats_update``), ``/ws/content/{client_id}`` and ``/ws/session/{session_id}`` (content
events and the messages addressed to that client or session). Every socket answers
``{"type": "ping"}`` with a ``pong``; anything else it does not understand gets an ``error``
message back and the socket stays open.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from ..appkeys import HUB, SETTINGS
from ..errors import BadRequest, EdgeError, NotFound, Unavailable
from ..events import CONNECTION_ACK, ERROR, JOB_UPDATE, Event
from ..records.job import Job
from ..settings import Settings
from .connection import Connection, Endpoint, Peer, RateLimit
from .hub import TERMINAL_STATUSES, Hub

MAX_SUBSCRIPTIONS = 1000
MAX_JOB_ID = 128


async def jobs(request: web.Request) -> web.StreamResponse:
    """WebSocket: every job event, or those of the subscribed jobs."""
    return await _serve(request, Endpoint.jobs)


async def status(request: web.Request) -> web.StreamResponse:
    """WebSocket: one job's status and progress until it ends (404 for an unknown job)."""
    return await _serve(request, Endpoint.status, request.match_info["job_id"])


async def dashboard(request: web.Request) -> web.StreamResponse:
    """WebSocket: connection_ack, then every event and a stats_update every few seconds."""
    return await _serve(request, Endpoint.dashboard)


async def content(request: web.Request) -> web.StreamResponse:
    """WebSocket: content events and the messages sent to this client id."""
    return await _serve(request, Endpoint.content, request.match_info["client_id"])


async def session(request: web.Request) -> web.StreamResponse:
    """WebSocket: content events and the messages sent to this session id."""
    return await _serve(request, Endpoint.session, request.match_info["session_id"])


async def _serve(
    request: web.Request, endpoint: Endpoint, target: str | None = None
) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat,
        compress=False,  # deflate cost ~3x the CPU and ~10x the memory per socket
        max_msg_size=settings.ws_max_message_kb * 1024,
        timeout=settings.ws_close_timeout,
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("this is a WebSocket endpoint: connect with a WebSocket client")
    hub = request.app[HUB]
    peer = await hub.gate.admit(request, endpoint)
    try:
        if endpoint is Endpoint.status:
            await _find_job(request, hub, peer, str(target))
        await ws.prepare(request)
        if request.transport is not None:
            conn = Connection(ws, request.transport, endpoint, peer, target=target,
                              queue_limit=settings.ws_send_queue_kb * 1024,
                              rate=_rate(settings))
            await _run(hub, conn)
    finally:
        hub.gate.release(peer)
    return ws


def _rate(settings: Settings) -> RateLimit:
    return RateLimit(settings.ws_message_rate, 2 * settings.ws_message_rate, time.monotonic)


async def _find_job(request: web.Request, hub: Hub, peer: Peer, job_id: str) -> Job:
    try:
        if hub.jobs is None:
            raise Unavailable("the job engine is not running")
        return await hub.jobs.get(job_id)
    except EdgeError as exc:
        hub.gate.refuse(request, peer.ip, exc, "not_found" if exc.status == 404 else exc.code)
        raise


async def _run(hub: Hub, conn: Connection) -> None:
    if conn.endpoint is Endpoint.status:
        conn.hold()  # from here on, no event for this job is missed
    hub.add(conn)
    try:
        await _greet(hub, conn)
        await _receive(hub, conn)
        await hub.wait_closed(conn)
    finally:
        hub.remove(conn)


async def _greet(hub: Hub, conn: Connection) -> None:
    if conn.endpoint is Endpoint.status:
        await _current_state(hub, conn)
    elif conn.endpoint is not Endpoint.jobs:
        hub.reply(conn, CONNECTION_ACK, {
            "connection_id": conn.id, "endpoint": conn.endpoint.value, "target": conn.target,
            "role": conn.peer.role.name, "read_only": conn.peer.read_only,
        })


async def _current_state(hub: Hub, conn: Connection) -> None:
    """Send the job as it is now, then what happened since, then close if it has ended."""
    assert hub.jobs is not None and conn.target is not None
    try:
        job = (await hub.jobs.get(conn.target)).to_json()
    except NotFound:
        conn.release()
        hub.close(conn, WSCloseCode.OK, "job not found")
        return
    hub.send_now(conn, Event.job(JOB_UPDATE, job))
    for event in conn.release():
        newer = event.body.get("job", {}).get("updated_at") or ""
        if newer >= job["updated_at"]:
            hub.send_now(conn, event)
            job = event.body["job"]
    if job["status"] in TERMINAL_STATUSES:
        hub.close(conn, WSCloseCode.OK, "job ended")


async def _receive(hub: Hub, conn: Connection) -> None:
    async for message in conn.ws:
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        if not conn.rate.allow():
            hub.close(conn, WSCloseCode.POLICY_VIOLATION, "rate limit exceeded")
            return
        if message.type is WSMsgType.BINARY:
            _error(hub, conn, "bad_message", "send JSON text messages, not binary")
            continue
        handle(hub, conn, message.data)


def handle(hub: Hub, conn: Connection, text: str) -> None:
    """Act on one client message; a bad one gets an ``error`` reply, never a close."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        _error(hub, conn, "bad_message", "messages must be JSON objects")
        return
    kind = message.get("type") if isinstance(message, dict) else None
    if not isinstance(kind, str):
        _error(hub, conn, "bad_message", 'messages must be JSON objects with a "type"')
    elif kind == "ping":
        hub.reply(conn, "pong", {})
    elif kind in ("subscribe", "unsubscribe") and conn.endpoint is Endpoint.jobs:
        _subscription(hub, conn, kind, message.get("job_id"))
    else:
        _error(hub, conn, "unknown_type",
               f"unknown message type {kind[:64]!r} on {conn.endpoint.value}")


def _subscription(hub: Hub, conn: Connection, kind: str, job_id: Any) -> None:
    if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID:
        _error(hub, conn, "bad_message", f'"job_id" must be a string of 1 to {MAX_JOB_ID} '
               'characters, or "*"')
        return
    if kind == "subscribe":
        if len(conn.subscriptions or ()) >= MAX_SUBSCRIPTIONS and job_id != "*":
            _error(hub, conn, "too_many_subscriptions",
                   f"at most {MAX_SUBSCRIPTIONS} jobs per socket; subscribe to \"*\" instead")
            return
        hub.sockets.subscribe(conn, job_id)
    else:
        hub.sockets.unsubscribe(conn, job_id)
    chosen = "*" if conn.subscriptions is None else sorted(conn.subscriptions)
    hub.reply(conn, kind + "d", {"job_id": job_id, "subscriptions": chosen})


def _error(hub: Hub, conn: Connection, code: str, message: str) -> None:
    hub.reply(conn, ERROR, {"code": code, "message": message})
