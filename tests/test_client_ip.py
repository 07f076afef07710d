from __future__ import annotations

import ipaddress

from toombos_edge.client_ip import client_ip

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_an_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert client_ip("203.0.113.9", "1.2.3.4", PROXIES) == "203.0.113.9"
    assert client_ip("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"


def test_a_trusted_proxy_names_the_right_most_untrusted_hop() -> None:
    # The client wrote "6.6.6.6" itself; the proxy appended what it saw (198.51.100.7).
    assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7", PROXIES) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked() -> None:
    assert client_ip("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", PROXIES) == "198.51.100.7"


def test_when_every_hop_is_trusted_the_left_most_is_the_client() -> None:
    assert client_ip("10.0.0.2", "10.1.1.1, 10.0.0.9", PROXIES) == "10.1.1.1"


def test_garbage_from_a_proxy_is_accounted_to_the_last_named_hop() -> None:
    assert client_ip("10.0.0.2", "evil, 10.0.0.9", PROXIES) == "10.0.0.9"
    assert client_ip("10.0.0.2", "not-an-ip", PROXIES) == "10.0.0.2"


def test_ipv6_and_missing_values() -> None:
    assert client_ip("::1", "2001:db8::5", PROXIES) == "2001:db8::5"
    assert client_ip("10.0.0.2", None, PROXIES) == "10.0.0.2"
    assert client_ip(None, "1.2.3.4", PROXIES) == "unknown"
