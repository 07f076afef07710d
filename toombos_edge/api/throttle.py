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

from collections.abc import Awaitable

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

    def authorize(self, request: web.Request, role: Role) -> Awaitable[None] | None:
        """:func:`authorize` (a key of at least ``role``) with the buckets around it; an
        identity-provider token is checked, and spends, in the awaitable returned."""
        limiter = self.limiter
        if limiter.failures.table:  # some address failed lately: is it this one?
            limiter.check_failures(self.address(request))
        try:
            token_check = authorize(request, role)
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
        if token_check is not None:
            return self._token(request, token_check)
        key = request[PRINCIPAL]
        policy = limiter.by_role[key.role]  # spend_key(), inline: this runs on every request
        if policy is not None:
            limiter.keys.take(key.id, policy)
        return None

    async def _token(self, request: web.Request, check: Awaitable[None]) -> None:
        """A token spends as a key does, from its subject's bucket; a bad one is a failure
        of its address, as a wrong key is."""
        try:
            await check
        except Unauthorized:
            self.limiter.fail(self.address(request))
            raise
        except Forbidden:
            who = request.get(PRINCIPAL)
            if who is None:  # a valid token whose role maps to none here
                self.limiter.spend_address(self.address(request))
            else:
                self.limiter.spend_key(who.id, who.role)
            raise
        who = request[PRINCIPAL]
        self.limiter.spend_key(who.id, who.role)

    def anonymous(self, request: web.Request) -> None:
        """A public route: the client address's bucket."""
        self.limiter.spend_address(self.address(request))

    def address(self, request: web.Request) -> str:
        forwarded = ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, ()))
        return address_id(client_ip(request.remote, forwarded, self.proxies))
