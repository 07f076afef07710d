"""HTTPS and WSS served directly, for an edge box with no TLS proxy in front of it.

The certificate and key are read once, when the server starts: a restart (or
``POST /admin/restart``) picks up a renewed certificate.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from .errors import SettingsError
from .settings import Settings

#: One year, without ``includeSubDomains``: this server speaks for its own host only.
HSTS = "max-age=31536000"


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS 1.2 or newer with the library's default secure ciphers; None without TLS settings.

    A missing or unreadable file, or a key that does not match the certificate, is a
    ``SettingsError`` naming the setting, raised before anything listens.
    """
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as exc:
        raise SettingsError(f"TOOMBOS_TLS_CERT/TOOMBOS_TLS_KEY: no file {exc.filename}") from None
    except ssl.SSLError as exc:
        raise SettingsError(
            "TOOMBOS_TLS_CERT/TOOMBOS_TLS_KEY: not a PEM certificate and its matching key "
            f"({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"TOOMBOS_TLS_CERT/TOOMBOS_TLS_KEY: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    return context


async def add_hsts(request: web.Request, response: web.StreamResponse) -> None:
    """``Strict-Transport-Security`` on every response (an ``on_response_prepare`` hook)."""
    response.headers.setdefault("Strict-Transport-Security", HSTS)


def setup_tls(app: web.Application, settings: Settings) -> None:
    """Add the HSTS header to responses when this server speaks TLS itself."""
    if settings.tls:
        app.on_response_prepare.append(add_hsts)
