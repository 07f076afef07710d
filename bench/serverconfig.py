"""What configuration a bench runs the server with, said plainly in its output.

A bench starts the server with the ``TOOMBOS_*`` variables it needs and nothing else, so
the server runs its defaults (access log on, log level info, JSON logs) as a user's does.
``describe`` names every variable set and its default, parsed by the server's own
settings code, so the output cannot claim a default the server does not have.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from toombos_edge.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe(env: Mapping[str, str]) -> str:
    """``default configuration; set: X=1 (default 4), ...`` for the TOOMBOS_* variables."""
    settings, base = Settings.load(env), Settings()
    parts = []
    for key in sorted(env):
        name = key.removeprefix("TOOMBOS_").lower()
        default = getattr(base, name)
        same = getattr(settings, name) == default
        parts.append(f"{key}={env[key]}" + (" (the default)" if same else
                                            f" (default {_shown(default)})"))
    changed = "; set: " + ", ".join(parts) if parts else ""
    access = "on" if base.access_log else "off"
    return (f"server in its default configuration (access log {access}, "
            f"log level {base.log_level}, {base.log_format} logs to a file){changed}; "
            "every other setting default, apart from --data-dir and --port")


def commit() -> str:
    """The checked-out commit, so a figure can be traced to the code that made it."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()
