"""API docs without internet: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) of a real
``monitor serve`` daemon on loopback load their scripts, styles and favicon from the
daemon itself (``/static/docs/...``), never from a CDN.

Over HTTP: the pages name only local URLs and the assets are served. In Debian's headless
Chromium (Playwright; skipped when either is missing) with the network closed (no name
resolves, and any request to another host is aborted and recorded): both pages render the
API's operations and nothing was requested from another host.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from monitor.config import load_settings
from monitor.daemon import Daemon
from monitor.services.workspace import Workspace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                    reason=f"{CHROMIUM} is missing (apt-get install -y chromium)")

ASSETS = {  # path under /static/docs: (media type, smallest plausible size in bytes)
    "swagger-ui-bundle.js": ("javascript", 500_000),
    "swagger-ui.css": ("text/css", 50_000),
    "redoc.standalone.js": ("javascript", 500_000),
    "favicon.png": ("image/png", 500),
}
URL_ATTR = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']*)["']|url:\s*'([^']*)'""")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A daemon with its default exposure (signatures required), CLIP off, empty gallery."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("MONITOR_CONFIG", raising=False)
    root = tmp_path_factory.mktemp("docs")
    (root / "secret.txt").write_text(secrets.token_hex(32))
    cfg = root / "config.toml"
    cfg.write_text('[clip]\nenabled = false\n[server]\nwebhook_secret_file = "secret.txt"\n')
    daemon = Daemon(Workspace(load_settings(cfg)), str(cfg), host="127.0.0.1", port=0,
                    workers=1, grace=5)
    daemon.start()
    yield f"http://127.0.0.1:{daemon.bound_port}"
    daemon.shutdown()
    mp.undo()


def _urls(html: str) -> list[str]:
    return [a or b for a, b in URL_ATTR.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_names_only_local_urls(base: str, page: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        urls = _urls(r.text)
        assert "/openapi.json" in urls and "/static/docs/favicon.png" in urls
        assert any(u.startswith("/static/docs/") and u.endswith(".js") for u in urls)
        for url in urls:  # same origin: a path, not //host or scheme://host
            assert url.startswith("/") and not url.startswith("//"), (page, url)
        assert "cdn" not in r.text.lower() and "://" not in r.text, page
        # the docs stay public while /v1 still needs a signature
        assert client.get("/v1/gallery").status_code == 401


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_served(base: str, name: str) -> None:
    kind, least = ASSETS[name]
    r = httpx.get(f"{base}/static/docs/{name}", timeout=30)
    assert r.status_code == 200
    assert kind in r.headers["content-type"], r.headers["content-type"]
    assert len(r.content) >= least and int(r.headers["content-length"]) == len(r.content)


def test_docs_page_references_the_served_assets(base: str) -> None:
    html = httpx.get(f"{base}/docs", timeout=30).text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static/docs/{name}" in _urls(html)
    assert "/static/docs/redoc.standalone.js" in _urls(httpx.get(f"{base}/redoc").text)
    assert httpx.get(f"{base}/static/docs/nope.js").status_code == 404


# -- in a browser with the network closed ---------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError,
                                   reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def offline_page(browser, base: str) -> Iterator:
    """A page whose requests to any host but the daemon's are aborted; yields it with
    the lists of such requests (``outside``), of all requests that completed, and of
    console errors and uncaught exceptions."""
    local = urlsplit(base).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    seen: dict[str, list[str]] = {"outside": [], "finished": [], "errors": []}

    def gate(route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            seen["outside"].append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    page = context.new_page()
    page.on("requestfinished", lambda r: seen["finished"].append(r.url))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    yield page, seen
    context.close()


def _stayed_local(seen: dict[str, list[str]], base: str, ignore: str = "-") -> None:
    assert seen["outside"] == []
    assert seen["finished"] and all(u.startswith(base + "/") or u.startswith("blob:" + base)
                                    for u in seen["finished"]), seen["finished"]
    assert [e for e in seen["errors"] if ignore not in e] == []


@needs_chromium
def test_swagger_ui_renders_offline(base: str, offline_page) -> None:
    page, seen = offline_page
    page.goto(base + "/docs")
    page.wait_for_selector('.swagger-ui .opblock-summary-path[data-path="/v1/submissions"]',
                           timeout=30_000)
    assert "monitor" in page.locator(".swagger-ui .information-container .title").inner_text()
    paths = page.eval_on_selector_all(".opblock-summary-path",
                                      "els => els.map(e => e.dataset.path)")
    assert {"/v1/submissions", "/v1/search", "/v1/gallery", "/healthz"} <= set(paths)
    assert page.locator(".swagger-ui .errors-wrapper").count() == 0
    assert f"{base}/static/docs/swagger-ui-bundle.js" in seen["finished"]
    _stayed_local(seen, base)


@needs_chromium
def test_redoc_renders_offline(base: str, offline_page) -> None:
    page, seen = offline_page
    page.goto(base + "/redoc")
    page.wait_for_selector('[role="menuitem"][aria-label="submissions"]', timeout=30_000)
    assert page.locator('[role="menuitem"][aria-label="Submit"]').count() == 1
    assert page.locator("h1").first.inner_text().startswith("monitor")
    assert page.get_by_text("/v1/submissions", exact=True).count() >= 1
    assert f"{base}/static/docs/redoc.standalone.js" in seen["finished"]
    # ReDoc's sidebar asks for the Redocly logo on its CDN; the page's CSP refuses it
    _stayed_local(seen, base, ignore="cdn.redoc.ly/redoc/logo")
