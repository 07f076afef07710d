"""Rate limits: a token bucket per API key and per client address, one float each.

A bucket of ``quota`` tokens refilled evenly over ``window`` seconds is kept the way GCRA
(the generic cell rate algorithm) keeps it: as the time at which it would be full again
(its *TAT*). A request is let in when, after adding its ``interval`` (window / quota), that
time is at most ``window`` ahead of now. So a check is a dict pop, two comparisons and a
dict store: no lock (only the event loop touches the tables), no await, no timer.

A table forgets a bucket once it is full again (:meth:`Buckets.expire`), and holds at most
``max_size`` of them: past it, the least recently used quarter goes. Forgetting a bucket
hands it back full, so a flood of new addresses can buy no more than what each of those
addresses would have had anyway.

Refusals are :class:`~.errors.RateLimited` (429) with ``Retry-After`` and the ``RateLimit``
and ``RateLimit-Policy`` fields of draft-ietf-httpapi-ratelimit-headers-11.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import RateLimited
from .keys import Role

if TYPE_CHECKING:
    from .settings import Settings

#: What a bucket is counted by (the ``scope`` label of the metrics and activity lines).
KEY, ADDRESS, FAILED_AUTH, SERVER = "key", "ip", "failed_auth", "server"

_WHOSE = {
    KEY: "for this API key",
    ADDRESS: "from this address without an API key",
    FAILED_AUTH: "of failed authentications from this address",
    SERVER: "for the whole server",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """``quota`` requests per ``window`` seconds, in bursts of up to ``quota``."""

    name: str
    quota: int
    window: float
    interval: float = field(init=False)  #: seconds one request's token takes to come back

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", self.window / self.quota)

    @property
    def header(self) -> str:
        """This policy as a RateLimit-Policy item: ``"viewer";q=1200;w=60``."""
        return f'"{self.name}";q={self.quota};w={max(1, math.ceil(self.window))}'

    def refusal(self, scope: str, wait: float, *, first: bool = True,
                message: str | None = None) -> RateLimited:
        """The 429 for a request that must wait ``wait`` seconds for a token."""
        retry = max(1, math.ceil(wait))
        return RateLimited(
            message or f"rate limit exceeded: {self.quota} requests per {self.window:g} s "
            f"{_WHOSE[scope]}; retry in {retry} s",
            {"policy": self.name, "scope": scope, "quota": self.quota,
             "window": self.window, "retry_after": retry},
            {"Retry-After": str(retry), "RateLimit-Policy": self.header,
             # Nothing left, and the effective window ends when a token is back.
             "RateLimit": f'"{self.name}";r=0;t={retry}'},
            policy=self.name, scope=scope, first=first)


def policy(name: str, quota: int, window: float) -> Policy | None:
    """A policy, or None for a quota of 0 (no limit)."""
    return Policy(name, quota, window) if quota > 0 else None


class Buckets:
    """One scope's buckets: id → the time it is full again, least recently used first."""

    __slots__ = ("clock", "evicted", "max_size", "refusing", "scope", "table")

    def __init__(self, scope: str, max_size: int, clock: Callable[[], float]) -> None:
        self.scope, self.max_size, self.clock = scope, max_size, clock
        self.table: dict[str, float] = {}
        #: Ids refused since they were last let in: a flood makes one activity line each.
        self.refusing: set[str] = set()
        self.evicted = 0  #: buckets forgotten before they were full (the cap at work)

    def __repr__(self) -> str:
        return (f"<Buckets {self.scope} size={len(self.table)} refusing={len(self.refusing)} "
                f"evicted={self.evicted}>")

    def take(self, ident: str, policy: Policy) -> None:
        """One token from ``ident``'s bucket, or :class:`RateLimited` (nothing taken)."""
        table, now = self.table, self.clock()
        tat = table.pop(ident, now)  # popped and stored again: the dict's order is by use
        # Not max(): a call, and this runs on every request. A past TAT: full while idle.
        after = (tat if tat > now else now) + policy.interval
        if after - now > policy.window:
            table[ident] = tat
            raise self._refused(ident, policy, after - now - policy.window)
        table[ident] = after
        if self.refusing:
            self.refusing.discard(ident)
        if len(table) > self.max_size:
            self._evict()

    def check(self, ident: str, policy: Policy) -> None:
        """:class:`RateLimited` when ``ident``'s bucket is empty; takes nothing."""
        tat = self.table.get(ident)
        if tat is not None:
            wait = tat + policy.interval - self.clock() - policy.window
            if wait > 0:
                raise self._refused(ident, policy, wait)

    def _refused(self, ident: str, policy: Policy, wait: float) -> RateLimited:
        first = ident not in self.refusing
        self.refusing.add(ident)
        return policy.refusal(self.scope, wait, first=first)

    def _evict(self) -> None:
        """Forget the least recently used quarter (dict order is the order of last use)."""
        oldest = list(itertools.islice(self.table, max(1, self.max_size // 4)))
        for ident in oldest:
            del self.table[ident]
            self.refusing.discard(ident)
        self.evicted += len(oldest)

    def expire(self, now: float) -> int:
        """Forget every full bucket (it would be made the same afresh); returns how many."""
        full = [ident for ident, tat in self.table.items() if tat <= now]
        for ident in full:
            del self.table[ident]
            self.refusing.discard(ident)
        return len(full)


def address_id(ip: str) -> str:
    """The bucket of a client address: the address itself, or its /64 for IPv6 (one
    host usually holds a whole /64, so per address it could change bucket at will); an
    IPv4 client of a dual-stack socket (``::ffff:a.b.c.d``) is its IPv4 address."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class RateLimiter:
    """The server's buckets: per key by its role's policy, per address for requests
    without a key, per address for failed authentications; and the refusals counted."""

    def __init__(
        self,
        roles: dict[Role, Policy | None],
        anonymous: Policy | None,
        failed_auth: Policy | None,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Each role's policy, indexed by the role's value (a tuple: an IntEnum's hash
        #: would be a Python call).
        self.by_role = tuple(roles.get(Role(level)) if level else None
                             for level in range(max(Role) + 1))
        self.anonymous, self.failed_auth = anonymous, failed_auth
        self.keys = Buckets(KEY, max_buckets, clock)
        self.addresses = Buckets(ADDRESS, max_buckets, clock)
        self.failures = Buckets(FAILED_AUTH, max_buckets, clock)
        #: Requests refused, by (scope, policy), the server-wide restart limit included.
        self.refusals: dict[tuple[str, str], int] = {}

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic
                      ) -> RateLimiter:
        window = settings.rate_limit_window
        roles = {role: policy(role.name, getattr(settings, f"rate_limit_{role.name}"), window)
                 for role in Role}
        return cls(roles, policy("anonymous", settings.rate_limit_anonymous, window),
                   policy("failed-auth", settings.rate_limit_failed_auth, window),
                   max_buckets=settings.rate_limit_max_buckets, clock=clock)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.keys!r} {self.addresses!r} {self.failures!r}>"

    @property
    def clock(self) -> Callable[[], float]:
        """What every table reads the time from; a test swaps it to move time on."""
        return self.keys.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        for table in self.tables():
            table.clock = clock

    def spend_key(self, key_id: str, role: Role) -> None:
        """A request made with a key of ``role``."""
        policy = self.by_role[role]
        if policy is not None:
            self.keys.take(key_id, policy)

    def spend_address(self, address: str) -> None:
        """A request without a key (a public route, or a protected one asked without)."""
        if self.anonymous is not None:
            self.addresses.take(address, self.anonymous)

    def check_failures(self, address: str) -> None:
        """Before a key is checked: refused while ``address`` has no failure left."""
        if self.failed_auth is not None:
            self.failures.check(address, self.failed_auth)

    def fail(self, address: str) -> None:
        """A key or token that did not authenticate, from ``address``."""
        if self.failed_auth is not None:
            self.failures.take(address, self.failed_auth)

    def record(self, refusal: RateLimited) -> None:
        """Count a refusal (for the metrics), whichever limit made it."""
        label = (refusal.scope, refusal.policy)
        self.refusals[label] = self.refusals.get(label, 0) + 1

    def expire(self) -> int:
        """Forget the full buckets of every table; returns how many."""
        now = self.clock()
        return sum(table.expire(now) for table in (self.keys, self.addresses, self.failures))

    def tables(self) -> tuple[Buckets, ...]:
        return (self.keys, self.addresses, self.failures)
