"""The Dockerfile built and run for real, with Debian's daemonless podman.

No container registry is reachable from the test machines, so the official base image
cannot be pulled: the test makes a stand-in from Debian's packages (debootstrap from the
mirror apt uses, with python3 and its venv module), imports it, and passes it as the
Dockerfile's BASE_IMAGE. The stand-in also carries this machine's CA bundle and a pip.conf
naming it, the way a site's own base image does where HTTPS goes through an inspecting
proxy. It is kept (podman's storage, and the root under /var/tmp) between runs.

podman runs with runc, cgroupfs, no default ulimits and the host's network: crun and the
default ulimits are refused by the kernel of these machines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, http
from debian_tools import debian_mirror, ensure

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/var/tmp/toombos-edge-test-base")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = "python3,python3-venv"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
STOP_BUDGET = 10.0  # Docker's default wait between SIGTERM and SIGKILL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


class Podman:
    def __init__(self, conf: Path) -> None:
        self.env = {"CONTAINERS_CONF": str(conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 600,
                 stdin: Any = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True,
                                text=True, check=False, timeout=timeout, stdin=stdin)
        assert result.returncode == 0 or not check, (
            f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
        return result


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    ensure({"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"})
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    runner = Podman(conf)
    probe = runner("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    assert probe.returncode == 0, (
        f"podman cannot run on this machine (runc, cgroupfs, no ulimits): {probe.stderr}"
    )
    return runner


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> str:
    """A python3 image made from Debian's packages, built once and kept."""
    mirror, suite = debian_mirror()
    recipe = f"{suite} {mirror} {BASE_PACKAGES}".encode() + CA_BUNDLE.read_bytes()
    tag = f"localhost/toombos-edge-test-base:{suite}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    rootfs = CACHE / "rootfs"
    done = CACHE / "rootfs.done"
    if not done.exists() or done.read_text() != f"{suite} {mirror} {BASE_PACKAGES}":
        shutil.rmtree(rootfs, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", suite,
             str(rootfs), mirror], capture_output=True, text=True, check=False, timeout=900)
        assert result.returncode == 0, (
            f"debootstrap {suite} from {mirror} failed:\n{result.stdout[-2000:]}"
            f"{result.stderr[-2000:]}"
        )
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        done.write_text(f"{suite} {mirror} {BASE_PACKAGES}")
    (rootfs / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        podman("import", "-", tag, stdin=tar.stdout)
    assert tar.returncode == 0
    return tag


@pytest.fixture(scope="module")
def image(podman: Podman, base_image: str) -> Iterator[str]:
    tag = f"localhost/toombos-edge-test:{uuid.uuid4().hex[:12]}"
    podman("build", "--format", "docker", "--layers=false", "--network", "host", "--build-arg",
           f"BASE_IMAGE={base_image}", "-t", tag, str(ROOT))
    yield tag
    podman("rmi", "--force", tag, check=False)


@pytest.fixture
def volume(podman: Podman) -> Iterator[str]:
    name = f"toombos-edge-test-{uuid.uuid4().hex[:12]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


class Container:
    def __init__(self, podman: Podman, image: str, volume: str, port: int) -> None:
        self.podman, self.port = podman, port
        self.name = f"toombos-edge-test-{uuid.uuid4().hex[:12]}"
        # The host's network (see the module's docstring): the image's 0.0.0.0 would be
        # every interface of the test machine, so this run keeps to the loopback.
        podman("run", "--detach", "--name", self.name, "--network", "host",
               "--volume", f"{volume}:/data", "--env", f"TOOMBOS_PORT={port}",
               "--env", "TOOMBOS_HOST=127.0.0.1", image)
        self.base = f"http://127.0.0.1:{port}"

    def healthy(self, deadline: float = 60.0) -> None:
        """Until the image's own HEALTHCHECK passes (podman runs it on demand)."""
        end = time.monotonic() + deadline
        while self.podman("healthcheck", "run", self.name, check=False).returncode != 0:
            state = self.inspect()["State"]
            assert state["Running"], f"the container exited: {self.logs()}"
            assert time.monotonic() < end, f"not healthy within {deadline}s: {self.logs()}"
            time.sleep(0.2)  # polling the health check with a deadline

    def inspect(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.podman("inspect", self.name).stdout)
        return found[0]

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def admin_key(self) -> str:
        return self.podman("exec", self.name, "cat", "/data/admin.key").stdout.strip()

    def stop(self) -> float:
        """``docker stop``: SIGTERM (the image's STOPSIGNAL), SIGKILL after 10 s; seconds."""
        began = time.monotonic()
        self.podman("stop", "--time", str(int(STOP_BUDGET)), self.name)
        return time.monotonic() - began

    def remove(self) -> None:
        self.podman("rm", "--force", self.name, check=False)


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def live(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/live", timeout=5) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_the_image_runs_stops_in_time_and_keeps_its_data(
    podman: Podman, image: str, volume: str, containers: list[Container]
) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001" and "/data" in config["Volumes"]
    assert "TOOMBOS_HOST=0.0.0.0" in config["Env"] and config["StopSignal"] == "SIGTERM"
    assert "/live" in " ".join(inspected["Healthcheck"]["Test"])

    first = Container(podman, image, volume, free_port())
    containers.append(first)
    first.healthy()
    assert live(first.base) == 200
    uid = podman("exec", first.name, "python3", "-c", "import os; print(os.getuid())").stdout
    assert uid.strip() == "10001"
    key = first.admin_key()
    status, job = http("POST", first.base + "/api/v2/content/generate", key=key, body={
        "title": "Made in a container", "text": "It survives a stop.", "channels": ["website"],
    })
    assert status == 202, job

    took = first.stop()  # right after the 202: the acknowledged job must not be lost
    state = first.inspect()["State"]
    assert state["ExitCode"] == 0, f"not a clean exit (137 is SIGKILL): {first.logs()}"
    assert took < STOP_BUDGET, took

    second = Container(podman, image, volume, free_port())
    containers.append(second)
    second.healthy()
    assert second.admin_key() == key
    deadline = time.monotonic() + 60
    while (found := http("GET", f"{second.base}/api/jobs/{job['job_id']}", key=key))[1][
        "status"
    ] != "completed":
        assert found[0] == 200, found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)  # polling the job's state with a deadline
    assert second.stop() < STOP_BUDGET
