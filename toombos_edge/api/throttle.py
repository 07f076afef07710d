"""The rate limits' step in the request pipeline (see :mod:`..ratelimit` for the buckets).

A request with a key spends from its key's bucket (by the key's role); one without a key
spends from its client address's; a wrong key spends from the address's failed-auth
bucket, and while that one is empty every request of the address is refused before its
key is even checked, so that keys cannot be guessed faster than the limit. Probes, and
routes a ``public_if`` setting opened to scrapers, get no :class:`Throttle` at all.

What a request that passes costs: an attribute test, the key check it had anyway, and
one bucket (a dict pop and store); the client address is only worked out when a request
has no key or some address failed lately.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..appkeys import PRINCIPAL
from ..client_ip import Network, client_ip
from ..errors import Forbidden, Unauthorized
from ..keys import Role
from ..ratelimit import RateLimiter, address_id
from .middleware import authorize


class Throttle:
    """The rate limits of every limited route of one app."""

    __slots__ = ("limiter", "proxies")

    def __init__(self, limiter: RateLimiter, proxies: tuple[Network, ...]) -> None:
        self.limiter, self.proxies = limiter, proxies

    def __repr__(self) -> str:
        return f"<Throttle {self.limiter!r}>"

    def authorize(self, request: web.Request, role: Role) -> None:
        """:func:`authorize` (a key of at least ``role``) with the buckets around it."""
        limiter = self.limiter
        if limiter.failures.table:  # some address failed lately: is it this one?
            limiter.check_failures(self.address(request))
        try:
            key = authorize(request, role)
        except Unauthorized:
            if request.headers.get(hdrs.AUTHORIZATION):
                limiter.fail(self.address(request))
            else:
                limiter.spend_address(self.address(request))
            raise
        except Forbidden:  # a known key, below the role: its requests count all the same
            key = request[PRINCIPAL]
            limiter.spend_key(key.id, key.role)
            raise
        policy = limiter.by_role[key.role]  # spend_key(), inline: this runs on every request
        if policy is not None:
            limiter.keys.take(key.id, policy)

    def anonymous(self, request: web.Request) -> None:
        """A public route: the client address's bucket."""
        self.limiter.spend_address(self.address(request))

    def address(self, request: web.Request) -> str:
        forwarded = ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, ()))
        return address_id(client_ip(request.remote, forwarded, self.proxies))
