"""The command line: ``serve``, ``keys``, ``migrate``, ``backup``, ``check``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import __version__, logs
from .errors import EdgeError, SchemaTooNew, SettingsError
from .events import EventBus
from .keys import KeyService, Role
from .settings import SPECS, Settings
from .store import Database

T = TypeVar("T")
Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {s.name: getattr(args, s.name) for s in SPECS if getattr(args, s.name, None)}
    try:
        settings = Settings.load(os.environ, args.config, overrides)
    except SettingsError as exc:
        print(f"toombos-edge: bad setting: {exc}", file=sys.stderr)
        return 2
    command: Command = args.command
    try:
        return command(settings, args)
    except SettingsError as exc:  # found once read, such as an unreadable TLS certificate
        print(f"toombos-edge: bad setting: {exc}", file=sys.stderr)
        return 2
    except (EdgeError, SchemaTooNew) as exc:
        print(f"toombos-edge: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML file of settings")
    for spec in SPECS:
        common.add_argument(spec.flag, dest=spec.name, metavar="VALUE", help=spec.help)
    parser = argparse.ArgumentParser(prog="toombos-edge", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the server").set_defaults(command=serve)
    sub.add_parser("check", parents=[common], help="validate settings").set_defaults(
        command=check
    )
    sub.add_parser("migrate", parents=[common], help="apply migrations").set_defaults(
        command=migrate
    )
    backup_cmd = sub.add_parser("backup", parents=[common], help="online backup to FILE")
    backup_cmd.add_argument("file", type=Path)
    backup_cmd.set_defaults(command=backup)
    _keys_parser(sub, common)
    return parser


def _keys_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = keys.add_parser("create", parents=[common], help="create a key, print its secret")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=[r.name for r in Role], default="viewer")
    create.set_defaults(command=keys_create)
    keys.add_parser("list", parents=[common], help="list keys").set_defaults(command=keys_list)
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(command=keys_revoke)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from .api.access_log import AccessLogger
    from .app import create_app
    from .appkeys import LIFECYCLE
    from .sdnotify import listen_fds
    from .tls import server_context

    logs.configure(settings.log_level, settings.log_format)
    ssl_context = server_context(settings)
    passed = listen_fds(settings.supervisor)  # a socket unit's sockets replace host:port
    loop = _new_loop()
    app = create_app(settings)
    where = [_address(sock) for sock in passed] or [f"{settings.host}:{settings.port}"]
    try:
        web.run_app(
            app,
            host=None if passed else settings.host,
            port=None if passed else settings.port,
            sock=passed or None,
            ssl_context=ssl_context,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("toombos_edge.access") if settings.access_log else None,
            shutdown_timeout=settings.shutdown_timeout,
            # run_app "prints" once every site listens: the moment the server is serving.
            print=lambda _banner: app[LIFECYCLE].mark_serving(where),
            loop=loop,
        )
    except SchemaTooNew as exc:
        logging.getLogger(__name__).error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        logging.getLogger(__name__).error("cannot listen: %s", exc.strerror or exc)
        print(f"toombos-edge: cannot listen on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def check(settings: Settings, args: argparse.Namespace) -> int:
    from .tls import server_context

    server_context(settings)  # the certificate and key load, and match
    print("settings are valid:")
    for name, value in settings.public().items():
        print(f"  {name} = {value!r}")
    return 0


def _with_db(settings: Settings, work: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
    async def run() -> T:
        db = Database(settings.db_path, synchronous=settings.db_synchronous, readers=1)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        return db.schema_version

    print(f"database {settings.db_path} is at schema version {_with_db(settings, work)}")
    return 0


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> str:
        key, secret = await KeyService(db, EventBus()).create(args.name, Role[args.role])
        print(f"created {key.id} ({key.role.name}); the secret is shown once:", file=sys.stderr)
        return secret

    print(_with_db(settings, work))
    return 0


def keys_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        for key in await KeyService(db, EventBus()).list_keys():
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}\t{key.role.name}\t{state}\t{key.name}")

    _with_db(settings, work)
    return 0


def keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        key = await KeyService(db, EventBus()).revoke(args.key_id)
        print(f"revoked {key.id}; a running server drops it within seconds")

    _with_db(settings, work)
    return 0


def backup(settings: Settings, args: argparse.Namespace) -> int:
    """Copy the live database with SQLite's online backup, then verify the copy."""
    if not settings.db_path.exists():
        print(f"toombos-edge: no database at {settings.db_path}", file=sys.stderr)
        return 1
    target: Path = args.file
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(settings.db_path)) as source, contextlib.closing(
        sqlite3.connect(partial)
    ) as dest:
        source.backup(dest)
        verdict = dest.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        print(f"toombos-edge: backup failed its integrity check: {verdict}", file=sys.stderr)
        return 1
    partial.replace(target)
    print(f"backed up {settings.db_path} to {target} (integrity ok)")
    return 0
