"""The client's IP address: the peer, or what trusted proxies say it is.

Only a peer inside ``TOOMBOS_TRUSTED_PROXIES`` is believed about ``X-Forwarded-For``, and
then only as far as the chain of trusted hops goes: the client is the right-most entry that
is not itself a trusted proxy. Entries to its left were written by the client and are never
read, so a spoofed header buys nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address, proxies: Iterable[Network]) -> bool:
    return any(address in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The address to account a request to (``unknown`` when the peer has none)."""
    address = _parse(peer) if peer else None
    if address is None:
        return peer or UNKNOWN
    if not forwarded_for or not _trusted(address, proxies):
        return str(address)
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse(entry)
        if hop is None:
            # A trusted proxy wrote garbage: account it to the last hop we can name.
            return str(address)
        address = hop
        if not _trusted(hop, proxies):
            return str(hop)
    return str(address)
