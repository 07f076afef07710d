"""The command line: ``serve``, ``keys``, ``migrate``, ``backup``, ``restore``, ``check``,
``activity``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import __version__, logs
from . import backup as backups
from .activity import ActivityFilter, for_settings
from .backends import Backend, open_backend
from .errors import EdgeError, SchemaTooNew, SettingsError
from .events import EventBus
from .keys import KeyService, Role
from .logs import Actor, requester
from .settings import SPECS, Settings
from .store.sqlite.backup import SqliteCopies

T = TypeVar("T")
FOLLOW_SECONDS = 0.5  #: how often ``activity --follow`` looks for new lines
LOCAL = "local"  #: the actor id (and ip) of what the command line changes itself
Command = Callable[[Settings, argparse.Namespace], int]
#: Backups copy the SQLite file: with PostgreSQL named they would copy the wrong data.
SQLITE_ONLY = (
    "toombos-edge: TOOMBOS_DATABASE_URL (--database-url) is set, and `backup` and `restore` "
    "copy the SQLite file in the data dir. Back up PostgreSQL with its own tools (pg_dump, "
    "or base backups and WAL archiving); unset the URL to back up a SQLite node."
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {s.name: getattr(args, s.name) for s in SPECS if getattr(args, s.name, None)}
    try:
        settings = Settings.load(os.environ, args.config, overrides)
    except SettingsError as exc:
        print(f"toombos-edge: bad setting: {exc}", file=sys.stderr)
        return 2
    command: Command = args.command
    if settings.database_url and command in (backup, restore):
        print(SQLITE_ONLY, file=sys.stderr)
        return 2
    try:
        return command(settings, args)
    except SettingsError as exc:  # found once read, such as an unreadable TLS certificate
        print(f"toombos-edge: bad setting: {exc}", file=sys.stderr)
        return 2
    except (EdgeError, SchemaTooNew) as exc:
        print(f"toombos-edge: {exc}", file=sys.stderr)
        return 1


class _Usage(argparse.HelpFormatter):
    """The usage line without the settings' flags: every command takes them all (``--help``
    lists them), and a mistyped argument would print some ninety lines before its error."""

    def add_usage(self, usage: str | None, actions: Any, groups: Any,
                  prefix: str | None = None) -> None:
        shown = [action for action in actions if action.metavar != "VALUE"]
        super().add_usage(usage, shown, groups, prefix)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Usage)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML file of settings")
    for spec in SPECS:
        # argparse %-formats help texts: a literal % (in "15% more") must be doubled
        common.add_argument(spec.flag, dest=spec.name, metavar="VALUE",
                            help=spec.help.replace("%", "%%"))
    parser = _Parser(prog="toombos-edge", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("serve", parents=[common], help="run the server").set_defaults(command=serve)
    sub.add_parser("check", parents=[common], help="validate settings").set_defaults(
        command=check
    )
    sub.add_parser("migrate", parents=[common], help="apply migrations").set_defaults(
        command=migrate
    )
    backup_cmd = sub.add_parser(
        "backup", parents=[common], help="online backup into DIR (edge.db, blobs/ …)")
    backup_cmd.add_argument("dir", type=Path)
    backup_cmd.set_defaults(command=backup)
    restore_cmd = sub.add_parser(
        "restore", parents=[common], help="restore a backup DIR into a stopped data dir")
    restore_cmd.add_argument("dir", type=Path)
    restore_cmd.add_argument("--force", action="store_true",
                             help="replace an existing database (moved aside, not deleted)")
    restore_cmd.set_defaults(command=restore)
    _keys_parser(sub, common)
    _activity_parser(sub, common)
    return parser


def _activity_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    activity = sub.add_parser("activity", parents=[common],
                              help="print the activity log (oldest of the last LIMIT first)")
    activity.add_argument("--type", action="append", default=[], metavar="TYPE",
                          help="only this type (repeat for several)")
    activity.add_argument("--actor", help="a key id, a client IP, or 'system'")
    activity.add_argument("--target", help="a job, document, content or key id")
    activity.add_argument("--limit", type=int, default=50, help="lines printed first")
    activity.add_argument("--follow", "-f", action="store_true",
                          help="then print new lines as they come, until Ctrl-C")
    activity.set_defaults(command=activity_log)


def _keys_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        required=True, metavar="ACTION", parser_class=_Parser
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
    from .api.access_log import AccessLogger
    from .app import create_app
    from .serving import listening_sockets, run
    from .tls import server_context

    logs.configure(settings.log_level, settings.log_format)
    ssl_context = server_context(settings)
    try:
        # Before anything starts: the port is ours, or the command fails at once. A socket
        # passed by systemd or by a restart (LISTEN_FDS) is taken instead of binding one.
        sockets = listening_sockets(settings.host, settings.port,
                                    settings.supervisor.listen_fds)
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        logging.getLogger(__name__).error("cannot listen: %s", exc.strerror or exc)
        print(f"toombos-edge: cannot listen on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        return run(
            create_app(settings), sockets, _new_loop(), ssl_context,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("toombos_edge.access") if settings.access_log else None,
            access_log_format=settings.log_format,  # the AccessLogger's line format
        )
    except SchemaTooNew as exc:
        logging.getLogger(__name__).error("cannot start: %s", exc)
        return 1


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
    return _check_postgres(settings) if settings.database_url else 0


def _check_postgres(settings: Settings) -> int:
    """The PostgreSQL database is reachable and its schema current (0), or behind (1)."""
    from .store.postgres import migrate as pg

    state = asyncio.run(pg.inspect(settings.database_url))
    where = settings.public()["database_url"]
    if state.current:
        print(f"database {where} is at schema version {state.version} (current)")
        return 0
    print(f"toombos-edge: database {where} is at schema version {state.version} of "
          f"{state.latest}: run `toombos-edge migrate`", file=sys.stderr)
    return 1


def _with_backend(settings: Settings,
                  work: Callable[[Backend], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` on the database the settings name (SQLite or PostgreSQL)."""
    async def run() -> T:
        backend = await open_backend(settings, readers=1, pool_size=2)
        try:
            return await work(backend)
        finally:
            await backend.close()

    return asyncio.run(run())


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url:
        from .store.postgres import migrate as pg

        state = asyncio.run(pg.migrate(settings.database_url))
        print(f"database {settings.public()['database_url']} is at schema version "
              f"{state.version}" + (f" (applied {', '.join(state.applied)})"
                                    if state.applied else ""))
        return 0

    async def work(backend: Backend) -> int:
        assert backend.sqlite is not None
        return backend.sqlite.schema_version

    print(f"database {settings.db_path} is at schema version "
          f"{_with_backend(settings, work)}")
    return 0


@contextlib.asynccontextmanager
async def _audited(settings: Settings, backend: Backend) -> AsyncIterator[EventBus]:
    """A bus whose events become activity lines as the server's do (table and file), the
    actor being this machine's user: keys made or revoked here are in the audit trail."""
    bus = EventBus()
    if not settings.activity_log:
        yield bus
        return
    audit = for_settings(settings, backend.activity, bus)
    await audit.start()
    user = Actor(LOCAL, name=f"command line ({_local_user()})")
    token = requester.set(lambda: user)
    try:
        yield bus
    finally:
        requester.reset(token)
        await audit.close()


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        return f"uid {os.getuid()}"


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(backend: Backend) -> str:
        async with _audited(settings, backend) as bus:
            key, secret = await KeyService(backend.keys, bus).create(args.name, Role[args.role])
        print(f"created {key.id} ({key.role.name}); the secret is shown once:", file=sys.stderr)
        return secret

    print(_with_backend(settings, work))
    return 0


def keys_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(backend: Backend) -> None:
        for key in await KeyService(backend.keys, EventBus()).list_keys():
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}\t{key.role.name}\t{state}\t{key.name}")

    _with_backend(settings, work)
    return 0


def keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(backend: Backend) -> None:
        async with _audited(settings, backend) as bus:
            key = await KeyService(backend.keys, bus).revoke(args.key_id)
        print(f"revoked {key.id}; a running server drops it within seconds")

    _with_backend(settings, work)
    return 0


def activity_log(settings: Settings, args: argparse.Namespace) -> int:
    """Print the last ``--limit`` lines, oldest first; ``--follow`` then polls for new ones."""
    flt = ActivityFilter(tuple(args.type), args.actor, args.target)

    async def work(backend: Backend) -> None:
        store = backend.activity
        newest = await store.last_id()  # follow from here, whatever the filter
        rows = await store.page(flt, max(args.limit, 0))
        last = _print_rows(reversed(rows), newest)
        if args.follow:
            print("following the activity log; Ctrl-C to stop", file=sys.stderr, flush=True)
        while args.follow:
            await asyncio.sleep(FOLLOW_SECONDS)
            while rows := await store.after(flt, last, 1000):
                last = _print_rows(rows, last)

    with contextlib.suppress(KeyboardInterrupt):
        _with_backend(settings, work)
    return 0


def _print_rows(rows: Iterable[tuple[int, str]], last: int) -> int:
    """Print each row's line; returns the newest id printed."""
    for ident, line in rows:
        print(line, flush=True)
        last = max(last, ident)
    return last


def backup(settings: Settings, args: argparse.Namespace) -> int:
    """Copy the live database (SQLite's online backup) and its blobs into a directory."""
    copied = backups.backup(settings.data_dir, args.dir, SqliteCopies())
    print(f"backed up {settings.db_path} to {args.dir / 'edge.db'} (integrity ok) and "
          f"{copied.blobs} new blobs ({copied.blob_bytes} bytes) to {args.dir / 'blobs'}, "
          f"{copied.uploads} waiting uploads")
    if copied.blobs_missing:
        print(f"toombos-edge: {copied.blobs_missing} blobs were deleted while the backup ran "
              "(their documents went after the snapshot)", file=sys.stderr)
    return 0


def restore(settings: Settings, args: argparse.Namespace) -> int:
    """Restore a backup directory into the data dir of a stopped server."""
    copied = backups.restore(args.dir, settings.data_dir, SqliteCopies(), force=args.force)
    print(f"restored {args.dir} into {settings.data_dir}: edge.db, {copied.blobs} blobs "
          f"({copied.blob_bytes} bytes), {copied.uploads} uploads")
    return 0
