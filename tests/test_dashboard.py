"""The dashboard's files over HTTP: caching, compression, security headers, packaging."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import Client, ServerProcess, auth

from toombos_edge.appkeys import DASHBOARD
from toombos_edge.dashboard import load, static_dir

ROOT = Path(__file__).resolve().parent.parent
_REFS = re.compile(r"""(?:from\s+|import\(\s*|href=|src=)['"]([^'"]+\.(?:js|css|svg))['"]""")


async def test_the_page_carries_a_strict_csp_and_the_security_headers(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    host = page.url.host + ":" + str(page.url.port)
    assert f"connect-src 'self' ws://{host} wss://{host};" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = await page.text()
    assert "<script>" not in html and " style=" not in html  # nothing inline


async def test_the_page_is_revalidated_and_answers_304_when_unchanged(client: Client) -> None:
    first = await client.get("/")
    assert first.headers["Cache-Control"] == "no-cache"
    again = await client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""


async def test_assets_are_versioned_immutable_and_gzipped(client: Client) -> None:
    version = client.app[DASHBOARD].version
    html = await (await client.get("/")).text()
    assert f"/static/{version}/js/app.js" in html and "__VERSION__" not in html
    plain = await client.get(f"/static/{version}/js/jobs.js".replace("js/jobs", "js/pages/jobs"),
                             headers={"Accept-Encoding": "identity"})
    assert plain.status == 200
    assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert plain.headers["Content-Type"].startswith("text/javascript")
    assert "Content-Security-Policy" in plain.headers
    packed = await client.get(f"/static/{version}/app.css", headers={"Accept-Encoding": "gzip"},
                              auto_decompress=False)
    assert packed.headers["Content-Encoding"] == "gzip"
    on_disk = (ROOT / "static" / "app.css").read_bytes()
    assert gzip.decompress(await packed.read()) == on_disk
    assert len(await packed.read()) < len(on_disk) / 2


async def test_an_old_version_is_served_but_never_kept_for_a_year(client: Client) -> None:
    old = await client.get("/static/000000000000/app.css")
    assert old.status == 200 and old.headers["Cache-Control"] == "no-cache"


async def test_unknown_or_escaping_paths_are_json_404s(client: Client) -> None:
    version = client.app[DASHBOARD].version
    for path in ("nope.js", "../pyproject.toml", "..%2F..%2Fdata%2Fadmin.key", "js/../../setup.py"):
        response = await client.get(f"/static/{version}/{path}")
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"


def test_every_file_a_page_or_module_imports_is_shipped() -> None:
    files = load(static_dir())
    assert files.index is not None
    for name, asset in files.assets.items():
        if not name.endswith((".js", ".html", ".css")) or name.startswith("vendor/"):
            continue
        for ref in _REFS.findall(asset.body.decode()):
            if ref.startswith("/static/"):
                target = ref.split("/", 3)[3]
            else:
                target = (Path(name).parent / ref).as_posix()
                target = str(Path(target).resolve().relative_to(Path.cwd().resolve())) \
                    if ".." in target else target.removeprefix("./")
            assert target in files.assets, f"{name} refers to {ref}, which is not shipped"


async def test_whoami_tells_the_key_and_its_role(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    response = await client.get("/api/auth/whoami", headers=auth(await make_key("viewer")))
    body = await response.json()
    assert body["role"] == "viewer" and body["name"] == "test viewer"
    assert body["id"].startswith("key_") and "secret" not in body
    assert (await client.get("/api/auth/whoami")).status == 401


def test_first_start_prints_a_link_that_signs_in_and_logs_no_key(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    key = server.admin_key()
    link = re.search(r"Dashboard \(this link signs a browser in\): (\S+)", server.stderr)
    assert link and link.group(1).endswith(f"/#key={key}")
    assert server.stderr.count(key) == 2  # the key itself, once, and the link
    assert key not in server.stdout


def test_a_built_wheel_carries_the_dashboard_and_finds_it(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path),
                    str(ROOT)], check=True, cwd=tmp_path, timeout=120)
    wheel = next(tmp_path.glob("toombos_edge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "toombos_edge/static/index.html" in names
    assert "toombos_edge/static/js/app.js" in names
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=120)
    found = subprocess.run(
        [sys.executable, "-c",
         "from toombos_edge.dashboard import static_dir; print(static_dir())"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
        capture_output=True, text=True, check=True, timeout=60)
    assert Path(found.stdout.strip()) == target / "toombos_edge" / "static"


def test_every_page_in_the_navigation_has_a_browser_test_budget() -> None:
    """Switching a page on (``enabled: true`` in registry.js) needs its budget in the
    browser tests, so that the every-page test covers it."""
    from test_dashboard_browser import PAGE_BUDGETS

    registry = (ROOT / "static" / "js" / "pages" / "registry.js").read_text()
    pages = dict(re.findall(r"\{id: '(\w+)'.*?enabled: (true|false)", registry))
    assert {"analytics", "activity"} <= set(pages)
    enabled = {page for page, on in pages.items() if on == "true"}
    assert enabled == set(PAGE_BUDGETS)
    for page in pages:
        assert (ROOT / "static" / "js" / "pages" / f"{page}.js").is_file()


def test_a_wildcard_bind_prints_a_link_a_browser_can_open(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process("--host", "0.0.0.0")
    assert f"http://127.0.0.1:{server.port}/#key={server.admin_key()}" in server.stderr
