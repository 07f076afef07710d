"""The API key record and the roles a key may hold."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..errors import Invalid
from ..ids import iso


class Role(IntEnum):
    """What a key may do; each role includes the ones below it."""

    viewer = 1  #: reads jobs, documents, content, metrics
    operator = 2  #: submits and changes jobs, documents and content
    admin = 3  #: keys, cache clearing, critical operations, restart

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise Invalid(
                f"unknown role {name!r}; expected viewer, operator or admin"
            ) from None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: its secret only as a SHA-256 digest; times in ms since the epoch."""

    id: str
    name: str
    role: Role
    secret_hash: bytes
    created_at: int
    last_used_at: int | None = None
    revoked_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.name,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }
