"""One error hierarchy. Services raise these; the request pipeline maps them to HTTP."""

from __future__ import annotations

from typing import Any


class EdgeError(Exception):
    """Base of every error the server reports to a client."""

    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        #: Extra response headers, such as ``Retry-After`` on a 503.
        self.headers = headers or {}


class BadRequest(EdgeError):
    status, code = 400, "bad_request"


class Unauthorized(EdgeError):
    status, code = 401, "unauthorized"


class Forbidden(EdgeError):
    status, code = 403, "forbidden"


class NotFound(EdgeError):
    status, code = 404, "not_found"


class Conflict(EdgeError):
    status, code = 409, "conflict"


class PayloadTooLarge(EdgeError):
    status, code = 413, "payload_too_large"


class Invalid(EdgeError):
    """Well-formed input that breaks a rule (unknown kind, wrong type of field)."""

    status, code = 422, "invalid"


class TooManyRequests(EdgeError):
    status, code = 429, "too_many_requests"


class RateLimited(TooManyRequests):
    """Over a rate limit's quota; ``headers`` carry Retry-After and the RateLimit fields."""

    def __init__(self, message: str, details: dict[str, Any], headers: dict[str, str], *,
                 policy: str, scope: str, first: bool) -> None:
        super().__init__(message, details, headers)
        self.policy, self.scope = policy, scope
        #: The first refusal since this client was last let in (one activity line each).
        self.first = first


class Unavailable(EdgeError):
    status, code = 503, "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database server (PostgreSQL) cannot be reached or refused the connection."""


class InsufficientStorage(EdgeError):
    """The disk (or the database's size limit) is full: nothing was written; reads go on."""

    status, code = 507, "insufficient_storage"


class SettingsError(Exception):
    """A setting with a bad value; raised at start, names the key."""


class SchemaTooNew(Exception):
    """The database was written by a newer version of the server."""
