"""Debian's tools that some tests drive for real (podman, debootstrap, systemd-analyze),
installed with apt-get when missing; a test that cannot have them fails and says why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_apt_updated: list[bool] = []  # apt-get update runs once per test session


def ensure(commands: dict[str, str]) -> None:
    """Every command of ``commands`` (command → Debian package) on PATH, or AssertionError."""
    missing = {cmd: pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None}
    if not missing:
        return
    assert shutil.which("apt-get"), (
        f"{', '.join(missing)} missing, and this is not a Debian system with apt-get: "
        f"install the packages {', '.join(sorted(set(missing.values())))}"
    )
    assert os.geteuid() == 0, (
        f"{', '.join(missing)} missing; as root, this test installs them with apt-get: "
        f"apt-get install {' '.join(sorted(set(missing.values())))}"
    )
    _apt_install(sorted(set(missing.values())))
    still = [cmd for cmd in missing if shutil.which(cmd) is None]
    assert not still, f"apt-get installed {sorted(set(missing.values()))} but not {still}"


def install(packages: list[str], why: str) -> None:
    """apt-get install ``packages`` (as root, on Debian), or AssertionError saying ``why``
    they are needed; for tools that are not on PATH once installed."""
    assert shutil.which("apt-get"), f"{why}: install the packages {' '.join(packages)}"
    assert os.geteuid() == 0, f"{why}; as root, this test runs apt-get install {' '.join(packages)}"
    _apt_install(packages)


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        _run(["apt-get", "update", "-q"], env)
        _apt_updated.append(True)
    # Other apt-get runs on the machine may hold dpkg's lock: wait for it, not fail.
    _run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *packages], env)


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                            timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-2000:]}"


def debian_mirror() -> tuple[str, str]:
    """(mirror URL, suite) that apt on this machine uses for Debian itself."""
    suite = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            suite = line.split("=", 1)[1].strip('"')
    assert suite, "no VERSION_CODENAME in /etc/os-release: not a Debian release"
    return _mirror_from_sources(suite) or "http://deb.debian.org/debian", suite


def _mirror_from_sources(suite: str) -> str | None:
    """The first ``deb`` source serving ``suite`` itself (not -security, not -updates)."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines()
                if ":" in line and not line.startswith("#")
            )
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and suite in suites:
                return fields.get("URIs", "").split()[0]
    listing = Path("/etc/apt/sources.list")
    for line in listing.read_text().splitlines() if listing.exists() else []:
        words = re.sub(r"\[[^]]*\]", " ", line).split()  # without [arch=… signed-by=…]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            return words[1]
    return None
