"""/docs (Swagger UI) and /redoc (ReDoc) render every operation of each API in a real browser
that can reach nothing but this machine: their files are served by the API itself
(shared/web/docs.py), not by a CDN.

Debian's headless Chromium loads each page, runs its JavaScript (virtual time, so it does not
wait on the wall clock) and dumps the DOM it built. Every host name but 127.0.0.1 resolves to
nothing, so a page that still needed a CDN would render empty here even on a machine with
internet. `make test` installs Chromium when it is missing (`make chromium`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from typing import Any

import httpx
import pytest

from devtools.harness.stack import Stack

SERVICES = ("orders", "inventory", "notifications")
CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed and `make test` could not install it "
    "(apt-get install chromium)",
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Only this machine: a CDN (or any other host) does not resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=30000",
)


def rendered(url: str) -> str:
    """The DOM of `url` once its scripts have run, in a fresh Chromium profile."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="doorbuster-chromium-") as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def operations(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, operationId, first tag) of every operation in an OpenAPI document."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            tag = (operation.get("tags") or ["default"])[0]
            found.append((method, path, operation["operationId"], tag))
    return found


@pytest.fixture(scope="module")
def documents(stack: Stack) -> dict[str, dict[str, Any]]:
    return {service: httpx.get(f"{stack.url(service)}/openapi.json").json() for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_the_docs_pages_load_no_file_from_elsewhere(stack: Stack, service: str):
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{stack.url(service)}{page}").text
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html, html
        for url in _asset_urls(html):
            assert url.startswith("/docs-static/") or url == "/openapi.json", url
            if url.startswith("/docs-static/"):
                asset = httpx.get(f"{stack.url(service)}{url}")
                assert asset.status_code == 200 and len(asset.content) > 1000, url


@pytest.mark.parametrize("service", SERVICES)
def test_swagger_ui_renders_every_operation_offline(
    stack: Stack, documents: dict[str, dict[str, Any]], service: str
):
    dom = rendered(f"{stack.url(service)}/docs")
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert f"Doorbuster {service} API" in dom
    for method, path, operation_id, tag in operations(documents[service]):
        # Swagger UI gives each operation block the id operations-<tag>-<operationId>.
        assert f'id="operations-{tag}-{operation_id}"' in dom, (method, path)
        assert f'data-path="{path}"' in dom, (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_redoc_renders_every_operation_offline(
    stack: Stack, documents: dict[str, dict[str, Any]], service: str
):
    dom = rendered(f"{stack.url(service)}/redoc")
    assert f"Doorbuster {service} API" in dom, dom[:2000]
    for method, path, operation_id, tag in operations(documents[service]):
        # ReDoc gives each operation's section the id tag/<tag>/operation/<operationId>.
        assert f'id="tag/{tag}/operation/{operation_id}"' in dom, (method, path)
        assert path in dom, (method, path)


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(
        r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", html
    )
