"""systemd/: both units pass ``systemd-analyze verify``, and the service's exposure score
(``systemd-analyze security``) is the README's and at most 2.0."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from debian_tools import ensure

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
SERVICE, SOCKET = "toombos-edge.service", "toombos-edge.socket"
INSTALLED_AT = "/opt/toombos-edge/venv/bin/toombos-edge"
MOST_EXPOSURE = 2.0


@pytest.fixture(scope="module", autouse=True)
def systemd_analyze() -> None:
    ensure({"systemd-analyze": "systemd"})


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                            check=False, timeout=120)
    assert "Failed to connect" not in result.stderr, (
        f"systemd-analyze wanted a running systemd (this sandbox has none): {result.stderr}"
    )
    return result


def units_here(folder: Path) -> list[Path]:
    """The units with ExecStart= pointing at this checkout's installed entry point: verify
    checks that the command exists and is executable."""
    entry = Path(sys.executable).parent / "toombos-edge"
    assert entry.exists(), f"the package is not installed in {entry.parent}"
    copies = []
    for name in (SERVICE, SOCKET):
        text = (UNITS / name).read_text()
        copy = folder / name
        copy.write_text(text.replace(INSTALLED_AT, str(entry)))
        copies.append(copy)
    return copies


def test_both_units_verify(tmp_path: Path) -> None:
    assert INSTALLED_AT in (UNITS / SERVICE).read_text()
    result = analyze("verify", *map(str, units_here(tmp_path)))
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=true", "--no-pager", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, f"no exposure level in: {result.stdout[-800:]} {result.stderr}"
    return float(match.group(1))


def test_the_service_is_locked_down_and_the_readme_says_how_much(tmp_path: Path) -> None:
    score = exposure(units_here(tmp_path)[0])
    assert score <= MOST_EXPOSURE
    readme = (ROOT / "README.md").read_text()
    assert f"exposure level of {score}" in readme, f"the README should quote {score}"


def test_the_service_is_what_the_server_expects() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNITS / SERVICE)
    service = unit["Service"]
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert service["Restart"] == "always" and service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == "toombos-edge"  # $STATE_DIRECTORY: the data dir
    assert service["WatchdogSec"] and service["CapabilityBoundingSet"] == ""
    # Migration 0006 rebuilds the jobs table at about 20 s per million jobs.
    assert service["TimeoutStartSec"] == "30min"
    socket_unit = configparser.ConfigParser(strict=False, interpolation=None)
    socket_unit.read(UNITS / SOCKET)
    assert socket_unit["Socket"]["ListenStream"] == "127.0.0.1:8000"  # the server's default
