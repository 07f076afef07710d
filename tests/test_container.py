"""The Dockerfile built and run for real, with Debian's daemonless podman; and the systemd
units run for real, with systemd as PID 1 of a container made from that image.

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
import threading
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
from support import eventually

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
        def passes() -> bool:
            if self.podman("healthcheck", "run", self.name, check=False).returncode == 0:
                return True
            assert self.inspect()["State"]["Running"], f"the container exited: {self.logs()}"
            return False

        eventually(passes, deadline, lambda: f"healthy: {self.logs()}", every=0.2)

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
        self.podman("rm", "--force", "--volumes", self.name, check=False)


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

    def completed() -> bool:
        found = http("GET", f"{second.base}/api/jobs/{job['job_id']}", key=key)
        assert found[0] == 200, found
        return bool(found[1]["status"] == "completed")

    eventually(completed, 60, "the acknowledged job to complete", every=0.1)
    assert second.stop() < STOP_BUDGET


# --- the systemd units, live: systemd as PID 1 of a container made from the image ---------

HOG_PLUGIN = '''
import time
from toombos_edge.jobs.kinds import JobKind, Outcome

async def hog(ctx):
    if ctx.job.attempts <= 1:  # the first attempt blocks the event loop; a retry does not
        time.sleep(ctx.params["seconds"])
    return Outcome({"hog": {"status": "success"}})

def kinds():
    return [JobKind("hog", hog)]
'''
# The test's own drop-in: a short watchdog so that a blocked loop is caught within seconds,
# and the plugin above on the server's path.
DROP_IN = """\
[Service]
WatchdogSec=2s
TimeoutAbortSec=3s
Environment=PYTHONPATH=/opt/hog
"""
SYSTEMD_IMAGE = """\
FROM {image}
USER root
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    systemd systemd-sysv \\
 && rm -rf /var/lib/apt/lists/*
COPY hog /opt/hog
COPY toombos-edge.service toombos-edge.socket /etc/systemd/system/
COPY test.conf /etc/systemd/system/toombos-edge.service.d/test.conf
RUN systemctl enable toombos-edge.socket
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


def systemd_context(folder: Path, image: str, port: int) -> Path:
    """The units as shipped, but for the image's venv and a free port."""
    folder.mkdir()
    for name in ("toombos-edge.service", "toombos-edge.socket"):
        text = (ROOT / "systemd" / name).read_text()
        text = text.replace("/opt/toombos-edge/venv/bin/", "/opt/toombos-edge/bin/")
        (folder / name).write_text(text.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    (folder / "test.conf").write_text(DROP_IN)
    plugin = folder / "hog"
    (plugin / "hog_plugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "hog_plugin.py").write_text(HOG_PLUGIN)
    (plugin / "hog_plugin-1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: hog-plugin\nVersion: 1.0\n")
    (plugin / "hog_plugin-1.0.dist-info/entry_points.txt").write_text(
        "[toombos_edge.handlers]\nhog = hog_plugin:kinds\n")
    (folder / "Containerfile").write_text(SYSTEMD_IMAGE.format(image=image))
    return folder


class Machine:
    """A container whose PID 1 is systemd, with the units installed and the socket enabled."""

    def __init__(self, podman: Podman, image: str) -> None:
        self.podman = podman
        self.name = f"toombos-edge-test-{uuid.uuid4().hex[:12]}"
        podman("run", "--detach", "--name", self.name, "--systemd=always", "--network",
               "host", image)

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.podman("exec", self.name, "systemctl", *args, check=check).stdout.strip()

    def show(self, *properties: str) -> dict[str, str]:
        text = self.systemctl("show", "toombos-edge.service", "-p", ",".join(properties))
        return dict(line.split("=", 1) for line in text.splitlines())

    def journal(self) -> str:
        return self.podman("exec", self.name, "journalctl", "-u", "toombos-edge",
                           "--no-pager").stdout

    def remove(self) -> None:
        self.podman("rm", "--force", "--volumes", self.name, check=False)


@pytest.fixture
def machine(podman: Podman, image: str, tmp_path: Path) -> Iterator[tuple[Machine, int]]:
    port = free_port()
    tag = f"localhost/toombos-edge-test-systemd:{uuid.uuid4().hex[:12]}"
    podman("build", "--layers=false", "--network", "host", "-t", tag,
           str(systemd_context(tmp_path / "context", image, port)))
    booted = Machine(podman, tag)
    yield booted, port
    booted.remove()
    podman("rmi", "--force", tag, check=False)


class Prober:
    """A client asking ``url`` without pause from a thread; each answer's status, or the
    exception's name when there was none."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[int | str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                self.outcomes.append(http("GET", self.url, timeout=60)[0])
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                self.outcomes.append(type(exc).__name__ + str(getattr(exc, "reason", "")))

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(90)


def test_under_systemd_the_watchdog_restarts_a_blocked_loop_on_the_held_socket(
    machine: tuple[Machine, int],
) -> None:
    box, port = machine
    base = f"http://127.0.0.1:{port}"
    eventually(lambda: box.systemctl("is-active", "toombos-edge.socket", check=False) == "active",
               60, "the socket unit", every=0.2)
    # The first connection starts the service; it waits in the backlog systemd holds.
    assert http("GET", base + "/ready", timeout=60) == (200, {"ready": True})
    state = box.show("ActiveState", "SubState", "StatusText", "NRestarts", "MainPID")
    assert (state["ActiveState"], state["SubState"], state["NRestarts"]) == (
        "active", "running", "0")
    assert state["StatusText"] == "ready" or "queued" in state["StatusText"]  # STATUS=
    owner = box.podman("exec", box.name, "stat", "-c", "%u", f"/proc/{state['MainPID']}").stdout
    assert int(owner) >= 61184  # a dynamic user (systemd's range), not root

    key = box.podman("exec", box.name, "cat", "/var/lib/toombos-edge/admin.key").stdout.strip()
    with Prober(base + "/live") as prober:
        status, job = http("POST", base + "/api/jobs", key=key,
                           body={"kind": "hog", "params": {"seconds": 30}})
        assert status == 202, job
        # The plugin holds the loop: no WATCHDOG=1 for 2 s, systemd aborts the process and
        # starts it again on the socket it kept.
        eventually(lambda: box.show("NRestarts")["NRestarts"] == "1", 60, "the watchdog's restart",
                   every=0.2)
        assert http("GET", base + "/live", timeout=60)[0] == 200
    assert "Watchdog timeout" in box.journal()
    # A client asking all along, one request at a time: none was refused. Requests sent
    # while the loop was blocked or the process restarting waited in the backlog systemd
    # holds and were answered by the new process; only the one the stuck process had already
    # accepted, if any, died with it (a reset: an abort cannot answer it).
    failed = [outcome for outcome in prober.outcomes if outcome != 200]
    assert not any("Refused" in str(outcome) for outcome in failed), prober.outcomes
    assert len(failed) <= 1 and prober.outcomes[-1] == 200, prober.outcomes
    url = f"{base}/api/jobs/{job['job_id']}"
    eventually(lambda: http("GET", url, key=key, timeout=30)[1]["status"] == "completed",
               60, "the hog job's second attempt", every=0.2)

    box.systemctl("stop", "toombos-edge.service")  # SIGTERM: a graceful stop, exit 0
    stopped = box.show("Result", "ExecMainStatus", "ActiveState")
    assert stopped == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}
