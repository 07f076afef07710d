"""The one settings object, and the only reader of the environment.

Sources, lowest precedence first: embedded defaults, ``TOOMBOS_*`` environment variables,
the TOML file named by ``--config``, command-line flags. A bad value fails at start with the
key's name and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .logs import redacted_url

ENV_PREFIX = "TOOMBOS_"

Parser = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting: its parser, default and help text (the README's table is made of these)."""

    name: str
    parse: Parser
    expected: str
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class _Invalid(ValueError):
    """A parser's refusal; the loader adds the key's name."""


def _integer(low: int, high: int) -> Parser:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool | float):  # TOML's 2.5 (or 8080.0): not cut to an integer
            raise _Invalid
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise _Invalid from None
        if not low <= value <= high:
            raise _Invalid
        return value

    return parse


def _number(low: float, high: float) -> Parser:
    def parse(raw: Any) -> float:
        if isinstance(raw, bool):
            raise _Invalid
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise _Invalid from None
        if not low <= value <= high:
            raise _Invalid
        return value

    return parse


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise _Invalid


def _choice(*options: str) -> Parser:
    def parse(raw: Any) -> str:
        text = str(raw).strip().lower()
        if text not in options:
            raise _Invalid
        return text

    return parse


def _text(raw: Any) -> str:
    if not isinstance(raw, str | int):
        raise _Invalid
    return str(raw).strip()


def _path(raw: Any) -> Path:
    text = _text(raw)
    if not text:
        raise _Invalid
    return Path(text)


def _items(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(item).strip() for item in raw if str(item).strip()]
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    raise _Invalid


def _origins(raw: Any) -> tuple[str, ...]:
    origins = _items(raw)
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in {"http", "https"} or not sep or not rest or "/" in rest or "*" in rest:
            raise _Invalid
    return tuple(origins)


def _url(raw: Any) -> str:
    """Empty, or an http(s) URL (a webhook or the public base URL)."""
    text = _text(raw)
    if text and not text.startswith(("http://", "https://")):
        raise _Invalid
    return text.rstrip("/")


def _optional_path(raw: Any) -> Path | None:
    """Empty (none), or a path."""
    text = _text(raw)
    return Path(text) if text else None


def _database_url(raw: Any) -> str:
    """Empty (the SQLite file in the data dir), or a ``postgresql://`` URL."""
    text = _text(raw)
    if text and not text.startswith(("postgresql://", "postgres://")):
        raise _Invalid
    return text


def _emails(raw: Any) -> tuple[str, ...]:
    addresses = _items(raw)
    if any("@" not in address or " " in address for address in addresses):
        raise _Invalid
    return tuple(addresses)


def _networks(raw: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _items(raw))
    except ValueError:
        raise _Invalid from None


#: Signing algorithms an identity provider's token may name; never "none".
JWT_HMAC = frozenset({"HS256", "HS384", "HS512"})
JWT_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                            "ES256", "ES384", "ES512", "EdDSA"})
_JWT_ALGORITHMS = {name.lower(): name for name in JWT_HMAC | JWT_ASYMMETRIC}
_ROLE_NAMES = ("viewer", "operator", "admin")


def _algorithms(raw: Any) -> tuple[str, ...]:
    try:
        return tuple(_JWT_ALGORITHMS[item.lower()] for item in _items(raw))
    except KeyError:
        raise _Invalid from None


def _role_map(raw: Any) -> tuple[str, ...]:
    """``value=role`` pairs, kept as text (``Settings`` stays hashable and printable)."""
    pairs = []
    for item in _items(raw):
        value, sep, role = (part.strip() for part in item.rpartition("="))
        if not sep or not value or role not in _ROLE_NAMES:
            raise _Invalid
        pairs.append(f"{value}={role}")
    return tuple(pairs)


SPECS: tuple[Spec, ...] = (
    Spec("host", _text, "a host name or IP address", "Address to bind."),
    Spec("port", _integer(0, 65535), "an integer from 0 to 65535", "TCP port to listen on."),
    Spec("data_dir", _path, "a directory path", "Where the database, blobs and cache live."),
    Spec("database_url", _database_url, "empty or a postgresql:// URL",
         "PostgreSQL to keep the data in instead of the SQLite file in the data dir, as "
         "postgresql://user:password@host:5432/dbname; several nodes may share one (see "
         "Several nodes on PostgreSQL below)."),
    Spec("shared_dir", _optional_path, "empty or a directory path",
         "A directory every node mounts (NFS, a shared volume) to keep documents' originals "
         "and waiting uploads in (blobs/ and uploads/ there) instead of the data dir. Unset "
         "on PostgreSQL, they are kept in the database (see Several nodes on PostgreSQL below)."),
    Spec("log_level", _choice("debug", "info", "warning", "error"),
         "one of debug, info, warning, error", "Lowest level of log lines written."),
    Spec("log_format", _choice("json", "text"), "json or text",
         "Log lines as JSON objects (for collectors) or plain text (for people)."),
    Spec("access_log", _boolean, "true or false", "Write one log line per HTTP request."),
    Spec("metrics_public", _boolean, "true or false",
         "Let anyone read GET /metrics without an API key (for a Prometheus scraper); "
         "GET /api/metrics always needs one."),
    Spec("validate_responses", _boolean, "true or false",
         "Check every JSON reply against its declared type and status, answering 500 on a "
         "mismatch (for tests; off in production, where it costs nothing)."),
    Spec("allowed_origins", _origins, "comma-separated exact origins like https://a.example",
         "Browser origins allowed by CORS and the WebSocket gate (exact match)."),
    Spec("db_synchronous", _choice("normal", "full"), "normal or full",
         "SQLite synchronous mode. full: every commit is fsynced before its request is "
         "answered, so an acknowledged job survives a power cut. normal: no fsync per "
         "commit (about 15% more jobs/s); survives a process crash, but a power cut may "
         "lose the last commits."),
    Spec("db_max_size_mb", _integer(0, 1 << 30), "an integer of MiB (0: no limit)",
         "Largest the database file may grow to, in MiB; past it writes get 507 and reads "
         "go on. 0: no limit but the disk's."),
    Spec("db_readers", _integer(1, 16), "an integer from 1 to 16",
         "Read-only SQLite connections, each in its own thread."),
    Spec("db_batch_max", _integer(1, 100_000), "an integer from 1 to 100000",
         "Most writes the writer commits in one transaction."),
    Spec("node_id", _text, "a name",
         "This node's name among several on one PostgreSQL database (in its events and "
         "/health); empty: the host name and process id."),
    Spec("job_poll_seconds", _integer(1, 3600), "an integer of seconds from 1 to 3600",
         "On PostgreSQL: how often a node looks for due jobs and rescues jobs whose lease "
         "ran out (a dead node's), besides the events that wake it at once."),
    Spec("db_pool_size", _integer(2, 200), "an integer from 2 to 200",
         "PostgreSQL connections this node pools (two more are its own: the engine lock "
         "and the events from other nodes)."),
    Spec("max_body_kb", _integer(1, 1_048_576), "an integer from 1 to 1048576",
         "Largest JSON request body accepted, in KiB."),
    Spec("max_upload_mb", _integer(1, 1_048_576), "an integer from 1 to 1048576",
         "Largest file accepted by POST /api/ingest, in MiB (streamed to disk, never "
         "held in memory); larger uploads get 413."),
    Spec("max_text_mb", _integer(1, 1024), "an integer from 1 to 1024",
         "Most text kept from one ingested file, in MiB (the rest is cut, and the job "
         "result says so)."),
    Spec("extract_processes", _integer(0, 64), "an integer from 0 to 64",
         "Worker processes that read uploaded files (started on first use), so parsing "
         "never holds the server's event loop; 0 reads in threads of the server instead."),
    Spec("archive_max_mb", _integer(1, 4096), "an integer from 1 to 4096",
         "Most a zip-based document (DOCX, PPTX, XLSX, ODF, EPUB) may inflate to, in MiB, "
         "as its zip directory declares and as counted while it is read; past it the file "
         "is kept without text."),
    Spec("archive_max_ratio", _number(2, 100_000), "a number from 2 to 100000",
         "Most a member of a zip-based document may inflate over its compressed size, once "
         "it passes 1 MiB; past it (a zip bomb) the file is kept without text."),
    Spec("tls_cert", _text, "a PEM file path or empty",
         "Certificate chain (PEM) to serve HTTPS and WSS directly; needs TOOMBOS_TLS_KEY. "
         "Empty: plain HTTP (behind a TLS proxy, or on localhost)."),
    Spec("tls_key", _text, "a PEM file path or empty",
         "Private key (PEM) of TOOMBOS_TLS_CERT; read once at start, so a restart reloads both."),
    Spec("trusted_proxies", _networks, "comma-separated IP addresses or networks",
         "Peers whose X-Forwarded-For header is believed."),
    Spec("jwt_secret", _text, "a secret of at least 32 characters, or empty",
         "HS256 secret of identity-provider tokens (Supabase's JWT secret); tokens signed "
         "with it are accepted beside API keys. Empty: off. Not with TOOMBOS_JWT_JWKS."),
    Spec("jwt_jwks", _text, "an http(s) URL, a file path, or empty",
         "The identity provider's public keys (JWKS) as a URL or a file; tokens signed "
         "with them are accepted beside API keys. Empty: off."),
    Spec("jwt_algorithms", _algorithms, "comma-separated algorithms like RS256,ES256",
         "Signing algorithms accepted (never none; HS* only with TOOMBOS_JWT_SECRET, "
         "never with a JWKS). Empty: HS256 with a secret, RS256,ES256 with a JWKS."),
    Spec("jwt_issuer", _text, "a string (required with tokens on)",
         "The iss claim a token must carry, e.g. https://PROJECT.supabase.co/auth/v1."),
    Spec("jwt_audience", _items, "comma-separated strings (required with tokens on)",
         "Audiences accepted; a token's aud must name one (Supabase: authenticated)."),
    Spec("jwt_leeway", _number(0, 300), "a number of seconds from 0 to 300",
         "Clock skew allowed when checking a token's exp, nbf and iat."),
    Spec("jwt_role_claim", _text, "a claim name, dotted for nested ones",
         "Claim that holds the user's role, e.g. role or app_metadata.role (a list of "
         "roles, as in Keycloak's realm_access.roles, gives the highest mapped one)."),
    Spec("jwt_roles", _role_map, "comma-separated value=role pairs (viewer, operator, admin)",
         "Map from the role claim's values to our roles; a token whose value is not "
         "listed gets 403."),
    Spec("jwt_name_claim", _text, "a claim name, dotted for nested ones, or empty",
         "Claim shown as the actor's name in the activity log beside the token's sub."),
    Spec("jwt_jwks_max_age", _number(1, 604_800), "a number of seconds from 1 to 604800",
         "Age after which the JWKS is fetched again, in the background (requests go on "
         "with the keys held)."),
    Spec("jwt_jwks_min_interval", _number(0, 86_400), "a number of seconds from 0 to 86400",
         "Least time between two JWKS fetches: a token with an unknown kid fetches the keys "
         "once, and a flood of them cannot make the server hammer the provider."),
    Spec("jwt_jwks_timeout", _number(0.1, 60), "a number of seconds from 0.1 to 60",
         "How long a JWKS fetch may take before it is given up."),
    Spec("retain_finished_days", _number(0, 36500), "a number of days from 0 to 36500",
         "Days a completed, partial or cancelled job is kept after it ended; 0 keeps them."),
    Spec("retain_dead_days", _number(0, 36500), "a number of days from 0 to 36500",
         "Days a failed job (no attempts left) is kept after it ended; 0 keeps them."),
    Spec("dead_max", _integer(0, 1 << 40), "an integer (0: no cap)",
         "Most failed jobs kept; past it the oldest go first. 0: no cap."),
    Spec("retain_content_versions", _integer(0, 1 << 30), "an integer (0: all)",
         "Earlier versions kept per content item, newest first; 0 keeps them all."),
    Spec("retain_content_version_days", _number(0, 36500), "a number of days from 0 to 36500",
         "Days an earlier content version is kept after it was replaced; 0 keeps them."),
    Spec("retention_interval", _number(1, 86400), "a number of seconds from 1 to 86400",
         "Seconds between retention runs: pruning, the sweep of unused blobs, and the "
         "incremental vacuum that gives freed pages back to the file system."),
    Spec("shutdown_timeout", _number(0, 600), "a number of seconds from 0 to 600",
         "One deadline for a whole stop, from the signal to the exit: requests and running "
         "jobs get it less a reserve (a fifth, at most 1 s) for requeueing and closing; "
         "past it the process exits whatever still runs."),
    Spec("restart_min_interval", _number(0, 86400), "a number of seconds from 0 to 86400",
         "Least time between two POST /admin/restart (sooner: 429 with Retry-After)."),
    Spec("rate_limit", _boolean, "true or false",
         "Rate-limit requests per API key and per client IP (then 429 with Retry-After and "
         "the RateLimit headers); the probes never are."),
    Spec("rate_limit_window", _integer(1, 86400), "an integer of seconds from 1 to 86400",
         "The window the rate limits below are counted over, in seconds."),
    Spec("rate_limit_viewer", _integer(0, 1_000_000_000), "an integer (0: no limit)",
         "Requests one viewer key may make per window, in bursts of up to as many; 0: no "
         "limit."),
    Spec("rate_limit_operator", _integer(0, 1_000_000_000), "an integer (0: no limit)",
         "Requests one operator key may make per window; 0: no limit."),
    Spec("rate_limit_admin", _integer(0, 1_000_000_000), "an integer (0: no limit)",
         "Requests one admin key may make per window; 0: no limit."),
    Spec("rate_limit_anonymous", _integer(0, 1_000_000_000), "an integer (0: no limit)",
         "Requests one client IP (an IPv6 /64) may make per window without an API key: "
         "public pages and files, and protected routes asked without a key; 0: no limit."),
    Spec("rate_limit_failed_auth", _integer(0, 1_000_000_000), "an integer (0: no limit)",
         "Wrong API keys one client IP may send per window; past it that IP's requests to "
         "routes that need a key are refused until the window lets one more in; 0: no limit."),
    Spec("rate_limit_max_buckets", _integer(100, 100_000_000), "an integer from 100 to 100000000",
         "Most clients tracked per limit (keys; IPs without a key; IPs with failed keys); past "
         "it the least recently seen quarter is forgotten (about 160 bytes each)."),
    Spec("restart_mode", _choice("exec", "exit"), "exec or exit",
         "How POST /admin/restart restarts: exec replaces the process in place, handing "
         "its listening socket on; exit ends it with code 75 for a supervisor to start."),
    Spec("job_workers", _integer(1, 256), "an integer from 1 to 256",
         "Jobs that run at the same time."),
    Spec("job_lease_seconds", _number(5, 3600), "a number of seconds from 5 to 3600",
         "Lease on a running job, renewed while it runs; an expired one is requeued."),
    Spec("job_retry_base", _number(0, 3600), "a number of seconds from 0 to 3600",
         "Backoff before the second attempt; doubles each attempt, with jitter."),
    Spec("job_retry_cap", _number(0, 86400), "a number of seconds from 0 to 86400",
         "Longest backoff between two attempts."),
    Spec("ws_max_per_ip", _integer(1, 100_000), "an integer from 1 to 100000",
         "Most WebSockets one client IP may hold open, across all endpoints (then 503)."),
    Spec("ws_auth", _choice("token", "origin"), "token or origin",
         "token: every WebSocket needs an API key or WS token; origin: browsers from an "
         "allowed origin may also watch the job feeds read-only without one."),
    Spec("ws_token_ttl", _number(5, 3600), "a number of seconds from 5 to 3600",
         "How long a token from POST /api/auth/ws-token can open WebSockets."),
    Spec("ws_send_queue_kb", _integer(16, 65_536), "an integer from 16 to 65536",
         "KiB queued to one WebSocket before it is a slow consumer and closed with 1013."),
    Spec("ws_heartbeat", _number(0.05, 3600), "a number of seconds from 0.05 to 3600",
         "Seconds between pings; a peer that does not answer within half of it is dropped."),
    Spec("ws_close_timeout", _number(0.05, 60), "a number of seconds from 0.05 to 60",
         "How long a closing WebSocket waits for the client's reply before it is cut."),
    Spec("ws_max_message_kb", _integer(1, 1024), "an integer from 1 to 1024",
         "Largest message a client may send on a WebSocket, in KiB (then closed with 1009)."),
    Spec("ws_message_rate", _number(0.1, 10_000), "a number from 0.1 to 10000",
         "Messages per second a client may send on one WebSocket, in bursts of twice that "
         "(then closed with 1008)."),
    Spec("ws_stats_interval", _number(0.01, 3600), "a number of seconds from 0.01 to 3600",
         "Seconds between stats_update messages on the dashboard WebSockets."),
    Spec("public_url", _url, "an http(s) URL or empty",
         "Base URL readers reach this server at (links to /site pages); empty: from host:port."),
    Spec("cache_size_mb", _integer(1, 1_000_000), "an integer from 1 to 1000000",
         "Most megabytes of rendered content kept in the cache before the oldest go."),
    Spec("cache_ttl_seconds", _integer(0, 31_536_000), "an integer from 0 to 31536000",
         "How long a cached render is kept; 0 keeps it until evicted."),
    Spec("analytics_cache_seconds", _number(0, 3600), "a number of seconds from 0 to 3600",
         "How long an analytics answer is reused before it is counted again; 0: never."),
    Spec("smtp_host", _text, "a host name or empty",
         "SMTP server for email publishing; empty writes .eml files to <data>/outbox."),
    Spec("smtp_port", _integer(1, 65535), "an integer from 1 to 65535", "SMTP server port."),
    Spec("smtp_starttls", _boolean, "true or false", "Upgrade the SMTP connection with STARTTLS."),
    Spec("smtp_username", _text, "a user name or empty", "SMTP login; empty sends without."),
    Spec("smtp_password", _text, "a password or empty", "SMTP password (never shown)."),
    Spec("smtp_from", _text, "an email address", "Sender address of published email."),
    Spec("smtp_to", _emails, "comma-separated email addresses",
         "Recipients of published email when a request names none."),
    Spec("webhook_twitter", _url, "an http(s) URL or empty",
         "Webhook that receives Twitter/X posts (signed JSON); empty: not configured."),
    Spec("webhook_linkedin", _url, "an http(s) URL or empty",
         "Webhook that receives LinkedIn posts (signed JSON); empty: not configured."),
    Spec("webhook_facebook", _url, "an http(s) URL or empty",
         "Webhook that receives Facebook posts (signed JSON); empty: not configured."),
    Spec("webhook_secret", _text, "a string or empty",
         "HMAC-SHA256 key of webhook signatures; empty: generated in <data>/webhook.key."),
    Spec("activity_log", _boolean, "true or false",
         "Record the activity log (the activity table and the JSONL file)."),
    Spec("activity_file", _path, "a file path",
         "The activity log's JSON lines; a relative path is under the data dir."),
    Spec("activity_max_mb", _integer(1, 1_000_000), "an integer from 1 to 1000000",
         "Size in MiB at which the activity file is rotated (renamed to .1, a new one created)."),
    Spec("activity_keep", _integer(0, 1000), "an integer from 0 to 1000",
         "Rotated activity files kept (.1 to .N); older ones are removed."),
    Spec("activity_queue", _integer(1, 10_000_000), "an integer from 1 to 10000000",
         "Activity events waiting to be written before new ones are dropped (and counted)."),
    Spec("activity_retention_days", _integer(0, 36_500), "an integer from 0 to 36500",
         "Days activity rows are kept in the database; 0 keeps them all."),
)

@dataclass(frozen=True, slots=True)
class Supervisor:
    """What systemd hands a service in its environment (sd_notify(3), sd_listen_fds(3)).

    A variable meant for another process (``WATCHDOG_PID``, ``LISTEN_PID`` naming another
    pid, as after a fork) counts as absent.
    """

    notify_socket: str = ""  #: where READY=1, WATCHDOG=1 … go; empty: no supervisor listens
    watchdog_usec: int = 0  #: the watchdog's period; 0: no watchdog
    listen_fds: int = 0  #: sockets passed from file descriptor 3 on (socket activation)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int | None = None) -> Supervisor:
        pid = os.getpid() if pid is None else pid
        return cls(
            notify_socket=environ.get("NOTIFY_SOCKET", ""),
            watchdog_usec=_ours(environ, "WATCHDOG_USEC", "WATCHDOG_PID", pid),
            # sd_listen_fds(3): the fds are ours only when LISTEN_PID says so.
            listen_fds=_ours(environ, "LISTEN_FDS", "LISTEN_PID", pid, owner_required=True),
        )


def _ours(
    environ: Mapping[str, str], name: str, pid_name: str, pid: int, *, owner_required: bool = False
) -> int:
    """``environ[name]`` as a count when it is meant for ``pid``; 0 when absent or not ours."""
    owner = environ.get(pid_name, "")
    if (owner or owner_required) and owner != str(pid):
        return 0
    try:
        return max(0, int(environ.get(name, "0")))
    except ValueError:
        return 0


#: Settings shown as "***" by ``Settings.public``.
SECRET_SETTINGS = frozenset({"smtp_password", "webhook_secret", "jwt_secret"})

_SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the server; build it with :meth:`load`."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str = field(default="", repr=False)  # may hold a password
    shared_dir: Path | None = None
    log_level: str = "info"
    log_format: str = "json"
    access_log: bool = True
    metrics_public: bool = False
    validate_responses: bool = False
    allowed_origins: tuple[str, ...] = ("http://localhost:3000",)
    db_synchronous: str = "full"
    db_max_size_mb: int = 0
    db_readers: int = 2
    db_batch_max: int = 1000
    db_pool_size: int = 10
    node_id: str = ""
    job_poll_seconds: int = 2
    max_body_kb: int = 1024
    max_upload_mb: int = 100
    max_text_mb: int = 16
    extract_processes: int = 2
    archive_max_mb: int = 256
    archive_max_ratio: float = 500.0
    tls_cert: str = ""
    tls_key: str = ""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=tuple
    )
    jwt_secret: str = field(default="", repr=False)
    jwt_jwks: str = ""
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str = ""
    jwt_audience: tuple[str, ...] = ()
    jwt_leeway: float = 30.0
    jwt_role_claim: str = "role"
    jwt_roles: tuple[str, ...] = ("viewer=viewer", "operator=operator", "admin=admin")
    jwt_name_claim: str = "name"
    jwt_jwks_max_age: float = 3600.0
    jwt_jwks_min_interval: float = 30.0
    jwt_jwks_timeout: float = 5.0
    retain_finished_days: float = 30.0
    retain_dead_days: float = 90.0
    dead_max: int = 10_000
    retain_content_versions: int = 50
    retain_content_version_days: float = 365.0
    retention_interval: float = 3600.0
    shutdown_timeout: float = 10.0
    restart_min_interval: float = 30.0
    rate_limit: bool = True
    rate_limit_window: int = 60
    rate_limit_viewer: int = 1200
    rate_limit_operator: int = 1200
    rate_limit_admin: int = 2400
    rate_limit_anonymous: int = 600
    rate_limit_failed_auth: int = 30
    rate_limit_max_buckets: int = 100_000
    restart_mode: str = "exec"
    job_workers: int = 4
    job_lease_seconds: float = 60.0
    job_retry_base: float = 2.0
    job_retry_cap: float = 300.0
    ws_max_per_ip: int = 10
    ws_auth: str = "token"
    ws_token_ttl: float = 60.0
    ws_send_queue_kb: int = 256
    ws_heartbeat: float = 30.0
    ws_close_timeout: float = 5.0
    ws_max_message_kb: int = 64
    ws_message_rate: float = 20.0
    ws_stats_interval: float = 5.0
    public_url: str = ""
    cache_size_mb: int = 256
    cache_ttl_seconds: int = 7 * 86400
    analytics_cache_seconds: float = 5.0
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "toombos-edge@localhost"
    smtp_to: tuple[str, ...] = ()
    webhook_twitter: str = ""
    webhook_linkedin: str = ""
    webhook_facebook: str = ""
    webhook_secret: str = field(default="", repr=False)
    activity_log: bool = True
    activity_file: Path = Path("logs/activity.jsonl")
    activity_max_mb: int = 100
    activity_keep: int = 5
    activity_queue: int = 100_000
    activity_retention_days: int = 90
    #: What a supervisor (systemd) passed in the environment; not a setting of its own.
    supervisor: Supervisor = field(default_factory=Supervisor)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "edge.db"

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str],
        config_file: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge defaults < environment < TOML file < command-line overrides."""
        merged: dict[str, Any] = {"supervisor": Supervisor.from_environ(environ)}
        if environ.get("STATE_DIRECTORY"):  # systemd's StateDirectory=, the first if several
            merged["data_dir"] = Path(environ["STATE_DIRECTORY"].split(":")[0])
        merged.update(_from_environ(environ))
        if config_file is not None:
            merged.update(_from_toml(config_file))
        for name, raw in (overrides or {}).items():
            merged[name] = _parse(_SPEC_BY_NAME[name], raw, label=_SPEC_BY_NAME[name].flag)
        if bool(merged.get("tls_cert")) != bool(merged.get("tls_key")):
            raise SettingsError("TOOMBOS_TLS_CERT and TOOMBOS_TLS_KEY: give both or neither")
        if merged.get("shared_dir") and not merged.get("database_url"):
            # One node keeps its files in the data dir, where backups look for them.
            raise SettingsError("TOOMBOS_SHARED_DIR: for several nodes, which need "
                                "TOOMBOS_DATABASE_URL; one node keeps its files in the data dir")
        settings = dataclasses.replace(cls(), **merged)
        _check_jwt(settings)
        return settings

    @property
    def jwt_enabled(self) -> bool:
        """Identity-provider tokens are accepted beside API keys."""
        return bool(self.jwt_secret or self.jwt_jwks)

    @property
    def jwt_accepted_algorithms(self) -> tuple[str, ...]:
        """``jwt_algorithms``, or the default for the kind of key configured."""
        if self.jwt_algorithms:
            return self.jwt_algorithms
        return ("HS256",) if self.jwt_secret else ("RS256", "ES256")

    @property
    def activity_path(self) -> Path:
        """The activity file; a relative ``activity_file`` is under the data dir."""
        return self.activity_file if self.activity_file.is_absolute() else (
            self.data_dir / self.activity_file)

    @property
    def tls(self) -> bool:
        """HTTPS and WSS are served directly (a certificate and its key are set)."""
        return bool(self.tls_cert and self.tls_key)

    @property
    def base_url(self) -> str:
        """Where readers reach this server: ``public_url``, else ``http(s)://host:port``."""
        scheme = "https" if self.tls else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.port}"

    def public(self) -> dict[str, Any]:
        """The settings as JSON-friendly values, secrets masked."""
        out: dict[str, Any] = {}
        for spec in SPECS:
            value = getattr(self, spec.name)
            if spec.name in SECRET_SETTINGS:
                value = "***" if value else ""
            elif spec.name == "database_url":
                value = redacted_url(value)
            elif isinstance(value, tuple):
                value = [str(item) for item in value]
            elif isinstance(value, Path):
                value = str(value)
            elif value is None:  # an optional path not set
                value = ""
            out[spec.name] = value
        return out


def _check_jwt(settings: Settings) -> None:
    """Token settings that only make sense together; each refusal names the key to fix."""
    if not settings.jwt_enabled:
        return
    if settings.jwt_secret and settings.jwt_jwks:
        raise SettingsError("TOOMBOS_JWT_SECRET and TOOMBOS_JWT_JWKS: give one, not both")
    if settings.jwt_secret and len(settings.jwt_secret) < 32:
        raise SettingsError("TOOMBOS_JWT_SECRET: expected at least 32 characters")
    for name in ("jwt_issuer", "jwt_audience", "jwt_role_claim", "jwt_roles"):
        if not getattr(settings, name):
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}: required when tokens are on")
    # A JWKS holds public keys: an HS* token checked against one would be "signed" with
    # a key anyone can read. A shared secret signs HS* only.
    allowed = JWT_HMAC if settings.jwt_secret else JWT_ASYMMETRIC
    wrong = [name for name in settings.jwt_accepted_algorithms if name not in allowed]
    if wrong:
        kind = "TOOMBOS_JWT_SECRET" if settings.jwt_secret else "TOOMBOS_JWT_JWKS"
        raise SettingsError(f"TOOMBOS_JWT_ALGORITHMS: {', '.join(wrong)} cannot be used "
                            f"with {kind}")


def _parse(spec: Spec, raw: Any, label: str) -> Any:
    try:
        return spec.parse(raw)
    except _Invalid:
        raise SettingsError(f"{label}: expected {spec.expected}, got {raw!r}") from None


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        spec = _SPEC_BY_NAME.get(name)
        if spec is None:
            raise SettingsError(f"{key}: unknown setting")
        values[name] = _parse(spec, raw, label=key)
    return values


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--config: {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for name, raw in document.items():
        spec = _SPEC_BY_NAME.get(name)
        if spec is None:
            raise SettingsError(f"{name}: unknown setting (in {path})")
        values[name] = _parse(spec, raw, label=f"{name} (in {path})")
    return values


def defaults_table(specs: Iterable[Spec] = SPECS) -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for each setting, as the README lists them."""
    base = Settings()
    rows = []
    for spec in specs:
        value = getattr(base, spec.name)
        if value is None:
            shown = ""
        elif isinstance(value, tuple):
            shown = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = str(value)
        rows.append((spec.env, shown, spec.help))
    return rows
