from __future__ import annotations

import stat
from pathlib import Path

from toombos_edge.keys import ApiKey, Role
from toombos_edge.ws.tokens import SECRET_FILE, WsTokens, load_secret

KEY = ApiKey("key_1", "ops", Role.operator, b"x" * 32, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_carries_its_key_and_role_until_it_expires() -> None:
    clock = Clock()
    tokens = WsTokens(b"s" * 64, ttl=60, clock=clock)
    token, issued = tokens.issue(KEY)
    assert token.startswith("wst_") and "tbe_" not in token
    claims = tokens.verify(token)
    assert claims == issued and (claims.key_id, claims.role) == ("key_1", Role.operator)
    clock.now += 59.9
    assert tokens.verify(token) is not None
    clock.now += 0.2
    assert tokens.verify(token) is None


def test_a_forged_or_mangled_token_is_refused() -> None:
    tokens = WsTokens(b"s" * 64, ttl=60)
    token, _ = tokens.issue(KEY)
    payload, _, signature = token.partition(".")
    assert WsTokens(b"t" * 64, ttl=60).verify(token) is None  # another server's secret
    assert tokens.verify(payload + "." + signature[::-1]) is None
    assert tokens.verify(payload[:-2] + "AA." + signature) is None  # role or expiry edited
    for junk in ("", "wst_", "wst_.", "wst_abc.def", "tbe_whatever", "wst_!!!." + signature):
        assert tokens.verify(junk) is None


def test_the_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and load_secret(tmp_path) == first
    assert repr(WsTokens(first, ttl=60)) == "<WsTokens ttl=60>"
