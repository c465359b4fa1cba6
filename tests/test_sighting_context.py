"""Page context kept with each sighting (issue 20): the page title, the ``img`` alt and
title, the ``<figure>``'s caption are found by discovery, travel with the candidate (inline
scans, scheduled jobs, HTTP submissions' metadata), are stored on the candidate row and
shown in the report, the takedown draft, the dashboard and the exports: escaped in HTML,
one capped line of plain text everywhere.

The site is real HTML served from a loopback HTTP server; the copies are edited versions
of a protected photo, found by the real pipeline.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image, ImageEnhance
from sqlmodel import select
from starlette.testclient import TestClient

from monitor.api import create_app, dashboard
from monitor.config.daemon import SourceSettings
from monitor.daemon.metrics import Metrics
from monitor.daemon.schedule import queue_source
from monitor.daemon.state import AppState
from monitor.daemon.worker import job_context, process
from monitor.intake.crawl.html import parse_html
from monitor.intake.crawl.sitemap import parse_sitemap
from monitor.outcome.exports import to_csv, to_json
from monitor.outcome.items import query_items
from monitor.outcome.report import write_report
from monitor.outcome.takedown import render_takedown
from monitor.services.gallery import add_paths
from monitor.services.sources import discover, run_source
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.models import Candidate, Job, Scan, utcnow
from monitor.types import CONTEXT_CAP, PageContext, clean_text
from tests.conftest import encode
from tests.test_crawl import _drain, _workspace
from tests.test_fetcher import RouteServer, conditional_image

TITLE = "Summer <b>sale</b> & more — Pirate Prints"
ALT = 'Astronaut <script>alert("alt")</script> poster'
CAPTION = "Our bestseller, printed on canvas"
HUGE = "<img src=x onerror=alert(1)>" + "A" * 10_000

PAGE = f"""<!doctype html><html><head><title>{TITLE.replace('<', '&lt;')}</title></head><body>
<figure class="product">
  <img src="/img/astro-edit.jpg" alt="{ALT.replace('"', '&quot;').replace('<', '&lt;')}"
       title="Poster\u202e\u0007 50x70">
  <figcaption>{CAPTION} <em>(limited)</em></figcaption>
</figure>
<p><img src="/img/coffee-copy.jpg" alt="{HUGE.replace('<', '&lt;')}"></p>
<img src="/img/moon.jpg">
</body></html>"""

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>{M}/</link><description>d</description>
<item><title>New poster: the astronaut</title><link>{M}/post.html</link>
<enclosure url="{M}/img/astro-edit.jpg" type="image/jpeg" length="1"/></item>
</channel></rss>"""

IMAGE_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
<url><loc>https://shop.example/p/1</loc>
  <image:image><image:loc>https://cdn.example/1.jpg</image:loc>
    <image:title>Astronaut poster</image:title>
    <image:caption>Printed
       on canvas</image:caption></image:image>
  <image:image><image:loc>https://cdn.example/2.jpg</image:loc></image:image></url>
</urlset>"""


def _edited(im: Image.Image) -> bytes:
    """An edited copy: cropped to 80 %, shrunk, re-saturated, re-encoded."""
    w, h = im.size
    crop = im.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((400, 400))
    return encode(ImageEnhance.Color(crop).enhance(1.2), "JPEG", quality=82)


@pytest.fixture(scope="module")
def shop(photos, others) -> Iterator[RouteServer]:
    """The pirate shop on loopback: one page, its images, a feed."""
    srv = RouteServer("127.0.0.1")
    html = {"Content-Type": "text/html; charset=utf-8"}
    srv.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\n"),
        "/shop.html": (200, html, PAGE.encode()),
        "/feed.xml": (200, {"Content-Type": "application/rss+xml"},
                      FEED.replace("{M}", srv.base).encode()),
        "/img/astro-edit.jpg": conditional_image(_edited(photos["astronaut"])),
        "/img/coffee-copy.jpg": conditional_image(encode(photos["coffee"].resize((300, 200)))),
        "/img/moon.jpg": conditional_image(encode(others["moon"])),
    })
    yield srv
    srv.close()


def _shop_ws(deploy, monkeypatch, photos) -> Workspace:
    ws = _workspace(deploy, monkeypatch)
    (deploy / "g").mkdir()
    for name in ("astronaut", "coffee"):
        photos[name].save(deploy / "g" / f"{name}.png")
    add_paths(ws, [str(deploy / "g")], "portfolio")
    return ws


def _context(ws: Workspace, url: str) -> dict:
    with ws.session() as s:
        row = s.exec(select(Candidate).where(Candidate.source == url)).one()
    return json.loads(row.context_json or "{}")


# -- discovery, without a database ---------------------------------------------------
def test_html_context_of_each_image() -> None:
    page = parse_html(PAGE, "https://pirate.example/shop.html")
    astro = page.contexts["https://pirate.example/img/astro-edit.jpg"]
    assert astro.page_title == "Summer <b>sale</b> & more — Pirate Prints"  # text, unescaped
    assert astro.alt == ALT
    assert astro.image_title == "Poster 50x70", "bidi override and BEL are stripped"
    assert astro.caption == f"{CAPTION} (limited)"
    coffee = page.contexts["https://pirate.example/img/coffee-copy.jpg"]
    assert len(coffee.alt) == CONTEXT_CAP and coffee.alt.endswith("…")
    assert coffee.caption is None
    assert page.contexts["https://pirate.example/img/moon.jpg"] == PageContext(page_title=TITLE)
    pic = parse_html('<title>T</title><picture><source srcset="/a.webp 2x">'
                     '<img src="/a.jpg" alt="a cat"></picture>'
                     '<meta property="og:image" content="/og.jpg">', "https://x.example/")
    assert pic.contexts["https://x.example/a.webp"] == PageContext("T", "a cat")
    assert pic.contexts["https://x.example/og.jpg"] == PageContext("T")


def test_sitemap_context_and_cleaning() -> None:
    _, _, [(page, images)] = parse_sitemap(IMAGE_SITEMAP)
    assert page == "https://shop.example/p/1"
    assert images == [("https://cdn.example/1.jpg",
                       PageContext(image_title="Astronaut poster", caption="Printed on canvas")),
                      ("https://cdn.example/2.jpg", None)]
    assert clean_text("  a\x00b\n\tc  ") == "ab c" and clean_text(" \x1b ") is None
    assert clean_text(42) is None
    ctx = PageContext.from_dict({"alt": "x" * 900, "caption": ["no"], "page_title": "\u2066t",
                                 "other": "dropped"})
    assert ctx == PageContext(page_title="t", alt="x" * (CONTEXT_CAP - 1) + "…")
    assert ctx.as_dict() == {"page_title": "t", "alt": ctx.alt}
    assert PageContext.from_dict({"alt": " "}) is None and PageContext.from_dict("x") is None


# -- scanned, stored, shown --------------------------------------------------------
def test_scan_stores_context_and_every_output_shows_it(deploy, shop, photos,
                                                       monkeypatch) -> None:
    ws = _shop_ws(deploy, monkeypatch, photos)
    page_url, astro_url = shop.url("/shop.html"), shop.url("/img/astro-edit.jpg")
    coffee_url = shop.url("/img/coffee-copy.jpg")
    src = SourceSettings(name="pirate", kind="page", location=page_url)
    _, results = run_source(ws, src)
    verdicts = {r.source: r.verdict.value for r in results}
    assert verdicts == {astro_url: "violation", coffee_url: "violation",
                        shop.url("/img/moon.jpg"): "clean"}

    assert _context(ws, astro_url) == {"page_title": TITLE, "alt": ALT,
                                       "image_title": "Poster 50x70",
                                       "caption": f"{CAPTION} (limited)"}
    assert len(_context(ws, coffee_url)["alt"]) == CONTEXT_CAP

    # the page changes its caption, the image answers 304: not re-checked, context updated
    monkeypatch.setitem(shop.routes, "/shop.html", (200, {"Content-Type": "text/html"},
                                                     PAGE.replace(CAPTION, "Now 20% off")
                                                     .encode()))
    _, again = run_source(ws, src)
    assert again == [] and _context(ws, astro_url)["caption"] == "Now 20% off (limited)"
    monkeypatch.setitem(shop.routes, "/shop.html", (200, {"Content-Type": "text/html"},
                                                     PAGE.encode()))
    run_source(ws, src)

    html = write_report(ws).read_text()
    assert "Summer &lt;b&gt;sale&lt;/b&gt; &amp; more — Pirate Prints" in html
    assert "Astronaut &lt;script&gt;alert(&#34;alt&#34;)&lt;/script&gt; poster" in html
    assert f"{CAPTION} (limited)" in html and "Poster 50x70" in html
    assert "<script" not in html and "<img src=x" not in html
    assert "A" * CONTEXT_CAP not in html and "A" * (CONTEXT_CAP - 40) in html

    with ws.session() as s:
        items = {i.source: i for i in query_items(s)}
    notice = render_takedown(ws, items[astro_url].violation_id)
    assert f"Image URL:        {astro_url}" in notice
    assert f"Found on page:    {page_url}" in notice
    assert f"Page title:       {TITLE}" in notice
    assert "How it appears on the page:" in notice
    assert f'Alt text:     "{ALT}"' in notice and f'Caption:      "{CAPTION} (limited)"' in notice
    long = render_takedown(ws, items[coffee_url].violation_id)
    assert max(len(line) for line in long.splitlines()) < CONTEXT_CAP + 40

    doc = json.loads(to_json(ws, list(items.values()), generated=utcnow(), filters={}))
    row = next(r for r in doc["items"] if r["source"] == astro_url)
    assert (row["page_title"], row["alt"], row["caption"]) == \
        (TITLE, ALT, f"{CAPTION} (limited)")
    rows = list(csv.DictReader(io.StringIO(to_csv(ws, list(items.values())))))
    assert next(r for r in rows if r["source"] == astro_url)["alt"] == ALT

    app = create_app(AppState(ws, "", Metrics()))
    if not any(getattr(r, "path", None) == "/violations" for r in app.routes):
        app.include_router(dashboard.router)
    client = TestClient(app, "http://127.0.0.1:8080", client=("127.0.0.1", 40000))
    detail = client.get(f"/violations/{items[astro_url].violation_id}")
    assert detail.status_code == 200
    assert "Summer &lt;b&gt;sale&lt;/b&gt;" in detail.text and "<script" not in detail.text
    assert f"Caption: “{CAPTION} (limited)”" in detail.text


def test_formula_like_context_is_text_in_csv(deploy, shop, photos, monkeypatch) -> None:
    """Page text is third-party: a title that starts like a formula stays text in CSV."""
    ws = _shop_ws(deploy, monkeypatch, photos)
    url = shop.url("/img/astro-edit.jpg")
    job = queue.enqueue(ws.db, "submission", url=url, page_url="https://forum.example/t/1",
                        metadata={"page_title": "=HYPERLINK(\"http://evil\")",
                                  "alt": "@SUM(1)", "caption": "fan art"}).job
    st = AppState(ws, "", Metrics())
    leased = queue.lease(ws.db, "t", 60)
    assert leased.id == job.id and process(st, "t", leased) == "done"
    with ws.session() as s:
        [item] = query_items(s)
    assert item.context == {"page_title": '=HYPERLINK("http://evil")', "alt": "@SUM(1)",
                            "caption": "fan art"}
    [row] = list(csv.DictReader(io.StringIO(to_csv(ws, [item]))))
    assert row["page_title"] == "'=HYPERLINK(\"http://evil\")" and row["alt"] == "'@SUM(1)"
    assert row["caption"] == "fan art"


def test_scheduled_jobs_carry_context_to_the_candidate(deploy, shop, photos,
                                                        monkeypatch) -> None:
    ws = _shop_ws(deploy, monkeypatch, photos)
    ws.settings.sources.append(SourceSettings(name="pirate", kind="page",
                                              location=shop.url("/shop.html")))
    assert queue_source(ws, "pirate") == 3
    with ws.session() as s:
        jobs = {j.url: j for j in s.exec(select(Job)).all()}
        scan_id = s.exec(select(Scan.id).where(Scan.source == "pirate")).one()
    astro_url = shop.url("/img/astro-edit.jpg")
    assert json.loads(jobs[astro_url].metadata_json)["alt"] == ALT
    assert job_context(jobs[astro_url]).caption == f"{CAPTION} (limited)"
    assert _drain(ws, scan_id).violations == 2
    assert _context(ws, astro_url)["page_title"] == TITLE

    feed = SourceSettings(name="blog", kind="feed", location=shop.url("/feed.xml"))
    [found] = list(discover(ws, feed))
    assert found.page_url == shop.url("/post.html")
    assert found.context == PageContext(page_title="New poster: the astronaut")


def test_a_job_with_unreadable_metadata_has_no_context() -> None:
    assert job_context(Job(kind="crawl", metadata_json="{not json")) is None
    assert job_context(Job(kind="crawl", metadata_json='{"alt": 3}')) is None
