"""Discovery and source scans against a fixture site served on loopback from real photos.

Two servers: the site on 127.0.0.1 and an "off-site" host (a CDN, another
site) on 127.0.0.2. The fetcher allows ``127.0.0.0/8`` only; the redirect to
the metadata address is refused by the guard before any connection.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from monitor.config import load_settings
from monitor.config.daemon import SourceSettings
from monitor.daemon.metrics import Metrics
from monitor.daemon.schedule import queue_source
from monitor.daemon.state import AppState
from monitor.daemon.worker import Workers
from monitor.intake.crawl import CrawlLog
from monitor.intake.crawl.html import largest_candidate, parse_srcset
from monitor.intake.fetcher import Fetcher
from monitor.services.gallery import add_paths
from monitor.services.sources import discover, run_source
from monitor.services.workspace import Workspace
from monitor.store import queue
from monitor.store.fetch_cache import DbValidatorCache
from monitor.store.models import Candidate, Job, Scan
from tests.conftest import encode
from tests.test_fetcher import HTML, LOOPBACK, RouteServer, conditional_image

SITE, OFF = "{M}", "{O}"  # placeholders for the two servers' base URLs in the texts

INDEX = """<!doctype html><html><head><title>shop</title>
<meta property="og:image" content="/img/og-chelsea.jpg">
<meta name="twitter:image" content="{O}/cdn/twitter-rocket.jpg">
</head><body>
<img src="/img/astronaut-small.jpg"
     srcset="/img/astronaut-480.jpg 480w, /img/astronaut-1024.jpg 1024w">
<img src="/img/astronaut-small.jpg#again">
<picture><source type="image/webp" srcset="/img/coffee-1x.webp 1x, /img/coffee-2x.webp 2x">
<img src="/img/coffee.jpg"></picture>
<img src="/private/hidden.jpg"><img src="/redirect-private.jpg"><img src="/fake.jpg">
<img src="/img/logo.svg"><img src="data:image/png;base64,iVBORw0KGgo=">
<a href="/img/lightbox-hubble.jpg">full size</a>
<a href="/page1.html">next</a> <a href="{O}/offsite.html">elsewhere</a>
<a href="/private/secret.html">secret</a> <a href="mailto:x@example.org">mail</a>
</body></html>"""
PAGE1 = """<html><head><base href="/assets/"></head><body>
<img src="a1.jpg"><a href="../page2.html">on</a></body></html>"""
PAGE2 = '<html><body><img src="/img/p2-camera.png"><a href="/page3.html">on</a></body></html>'
PAGE3 = '<html><body><img src="/img/too-deep.jpg"></body></html>'
SECRET = '<html><body><img src="/img/secret.jpg"></body></html>'
OFFSITE = '<html><body><img src="/cdn/offsite-only.jpg"></body></html>'
GALLERY = """<html><body><img src="/img/gallery-brick.jpg">
<a href="/page1.html">p1</a></body></html>"""
SM_PAGE = '<html><body><img src="/img/sm-page-horse.jpg"></body></html>'

SITEMAP_INDEX = """<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{M}/sitemaps/images.xml</loc></sitemap>
<sitemap><loc>{M}/sitemaps/pages.xml.gz</loc></sitemap>
<sitemap><loc>{M}/sitemaps/evil.xml</loc></sitemap>
</sitemapindex>"""
IMAGE_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
<url><loc>{M}/gallery.html</loc>
  <image:image><image:loc>{M}/img/sm-moon.jpg</image:loc></image:image>
  <image:image><image:loc>{O}/cdn/sm-coins.jpg</image:loc></image:image></url>
</urlset>"""
PAGE_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>{M}/sm-page.html</loc></url><url><loc>{O}/offsite.html</loc></url>
<url><loc>{M}/private/secret.html</loc></url></urlset>"""
EVIL_SITEMAP = """<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&e;</loc></url></urlset>"""

RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>t</title><link>{M}/</link><description>d</description>
<image><url>{M}/img/feed-logo.png</url><title>t</title><link>{M}/</link></image>
<item><title>one</title><link>{M}/post1.html</link>
<description>&lt;p&gt;hi &lt;img src="/img/rss-desc.jpg"&gt;&lt;/p&gt;</description>
<enclosure url="{M}/img/rss-enclosure.jpg" type="image/jpeg" length="1"/>
<media:content url="{M}/img/rss-media.jpg" medium="image"/>
<media:thumbnail url="{M}/img/rss-thumb.jpg"/></item>
<item><title>two</title><link>{M}/post2.html</link>
<enclosure url="{M}/audio/episode.mp3" type="audio/mpeg" length="1"/>
<media:content url="{M}/video/clip.mp4" type="video/mp4"/>
<content:encoded><![CDATA[<img srcset="/img/rss-c-400.jpg 400w, /img/rss-c-800.jpg 800w"
 src="/img/rss-c.jpg">]]></content:encoded></item>
</channel></rss>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>a</title><id>urn:x</id>
<updated>2024-01-01T00:00:00Z</updated>
<entry><title>e</title><id>urn:e1</id><updated>2024-01-01T00:00:00Z</updated>
<link rel="alternate" href="{M}/post3.html"/>
<link rel="enclosure" type="image/png" href="{M}/img/atom-enclosure.png"/>
<content type="html">&lt;img src="atom-content.jpg"&gt;</content>
<summary>plain words</summary></entry></feed>"""

# image path -> (photo name, format, longest side or None)
IMAGES = {
    "/img/astronaut-small.jpg": ("astronaut", "JPEG", 256),
    "/img/astronaut-480.jpg": ("astronaut", "JPEG", 480),
    "/img/astronaut-1024.jpg": ("astronaut", "JPEG", None),
    "/img/coffee-1x.webp": ("coffee", "WEBP", 300),
    "/img/coffee-2x.webp": ("coffee", "WEBP", None),
    "/img/coffee.jpg": ("coffee", "JPEG", 400),
    "/img/og-chelsea.jpg": ("chelsea", "JPEG", None),
    "/img/lightbox-hubble.jpg": ("hubble_deep_field", "JPEG", None),
    "/assets/a1.jpg": ("immunohistochemistry", "JPEG", None),
    "/img/p2-camera.png": ("camera", "PNG", 300),
    "/private/hidden.jpg": ("rocket", "JPEG", None),
}


def _image(photos, others, name: str, fmt: str, side: int | None) -> bytes:
    im = (photos | others)[name]
    if side:
        im = im.copy()
        im.thumbnail((side, side))
    return encode(im, fmt)


@pytest.fixture(scope="module")
def site_pair(photos, others) -> Iterator[tuple[RouteServer, RouteServer]]:
    site, off = RouteServer("127.0.0.1"), RouteServer("127.0.0.2")

    def fill(text: str) -> bytes:
        return text.replace(SITE, site.base).replace(OFF, off.base).encode()

    def html(text: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/html; charset=utf-8"}, fill(text)

    xml = {"Content-Type": "application/xml"}
    site.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"},
                        b"User-agent: *\nDisallow: /private/\n"),
        "/index.html": html(INDEX), "/page1.html": html(PAGE1), "/page2.html": html(PAGE2),
        "/page3.html": html(PAGE3), "/private/secret.html": html(SECRET),
        "/gallery.html": html(GALLERY), "/sm-page.html": html(SM_PAGE),
        "/redirect-private.jpg": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
        "/fake.jpg": (200, {"Content-Type": "image/jpeg"}, HTML),
        "/noext-image": conditional_image(_image(photos, others, "rocket", "JPEG", 200)),
        "/sitemap_index.xml": (200, xml, fill(SITEMAP_INDEX)),
        "/sitemaps/images.xml": (200, xml, fill(IMAGE_SITEMAP)),
        "/sitemaps/pages.xml.gz": (200, {"Content-Type": "application/gzip"},
                                   gzip.compress(fill(PAGE_SITEMAP))),
        "/sitemaps/evil.xml": (200, xml, fill(EVIL_SITEMAP)),
        "/feeds/rss.xml": (200, {"Content-Type": "application/rss+xml"}, fill(RSS)),
        "/feeds/atom.xml": (200, {"Content-Type": "application/atom+xml"}, fill(ATOM)),
    })
    for path, spec in IMAGES.items():
        ctype = {"JPEG": "image/jpeg", "WEBP": "image/webp", "PNG": "image/png"}[spec[1]]
        site.routes[path] = conditional_image(_image(photos, others, *spec), ctype)
    off.routes.update({
        "/offsite.html": html(OFFSITE),
        "/cdn/twitter-rocket.jpg": conditional_image(_image(photos, others, "rocket", "JPEG",
                                                            None)),
    })
    yield site, off
    site.close()
    off.close()


@pytest.fixture
def web(site_pair) -> tuple[RouteServer, RouteServer]:
    """The fixture site with empty request logs."""
    for srv in site_pair:
        srv.log.clear()
    return site_pair


def _workspace(deploy: Path, monkeypatch) -> Workspace:
    monkeypatch.setenv("MONITOR_CLIP__ENABLED", "false")
    (deploy / "config.toml").write_text(
        '[fetch]\nuser_agent = "monitor-test/1.0"\ntimeout = 3.0\nconnect_timeout = 1.0\n'
        "retries = 1\nbackoff = 0.05\nper_host_delay = 0.0\nper_host_concurrency = 4\n")
    ws = Workspace(load_settings())
    ws.__dict__["fetcher"] = Fetcher(ws.settings.fetch, max_bytes=ws.limits.max_bytes,
                                     cache=DbValidatorCache(ws.session), allow_networks=LOOPBACK)
    return ws


def _found(ws: Workspace, source: SourceSettings) -> tuple[dict[str, str | None], CrawlLog]:
    log = CrawlLog()
    items = list(discover(ws, source, log))
    assert len(items) == len({d.location for d in items}), "duplicates"
    return {d.location: d.page_url for d in items}, log


def test_srcset_parsing() -> None:
    assert parse_srcset("a.jpg 1x, b,c.jpg 2x,d.jpg") == [
        ("a.jpg", None, 1.0), ("b,c.jpg", None, 2.0), ("d.jpg", None, None)]
    assert largest_candidate("s.jpg 320w, l.jpg 1280w, m.jpg 640w") == "l.jpg"
    assert largest_candidate("https://x/i.jpg?w=1,h=2 2x, https://x/j.jpg 1x") == \
        "https://x/i.jpg?w=1,h=2"
    assert largest_candidate("") is None


def test_page_crawl_finds_exactly_the_right_images(deploy, web, monkeypatch) -> None:
    site, off = web
    ws = _workspace(deploy, monkeypatch)
    src = SourceSettings(name="shop", kind="page", location=site.url("/index.html"), depth=2)
    found, log = _found(ws, src)
    index, s = site.url("/index.html"), site.url
    assert found == {
        s("/img/astronaut-1024.jpg"): index, s("/img/astronaut-small.jpg"): index,
        s("/img/coffee-2x.webp"): index, s("/img/coffee.jpg"): index,
        s("/img/og-chelsea.jpg"): index, off.url("/cdn/twitter-rocket.jpg"): index,
        s("/private/hidden.jpg"): index, s("/redirect-private.jpg"): index,
        s("/fake.jpg"): index, s("/img/lightbox-hubble.jpg"): index,
        s("/assets/a1.jpg"): s("/page1.html"), s("/img/p2-camera.png"): s("/page2.html"),
    }
    for never in ("/img/astronaut-480.jpg", "/img/coffee-1x.webp", "/img/too-deep.jpg",
                  "/img/secret.jpg", "/img/logo.svg"):
        assert s(never) not in found
    assert off.url("/cdn/offsite-only.jpg") not in found
    assert site.requested("/page3.html") == []              # deeper than depth
    assert site.requested("/private/secret.html") == []     # robots.txt
    assert off.requested("/offsite.html") == []             # off-site link not followed
    assert any("secret.html" in w and "robots.txt" in why for w, why in log.skipped)
    assert log.pages == 3 and not log.errors
    for img in found:                                       # discovery fetches no image
        assert not site.requested(img.removeprefix(site.base))

    few, log = _found(ws, src.model_copy(update={"max_pages": 2, "max_images": 50}))
    assert s("/assets/a1.jpg") in few and s("/img/p2-camera.png") not in few
    assert any("max_pages=2" in why for _, why in log.skipped)
    capped, log = _found(ws, src.model_copy(update={"max_images": 3}))
    assert len(capped) == 3 and any("max_images=3" in why for _, why in log.skipped)


def test_sitemap_index_image_sitemap_and_pages(deploy, web, monkeypatch) -> None:
    site, off = web
    ws = _workspace(deploy, monkeypatch)
    src = SourceSettings(name="maps", kind="sitemap", location=site.url("/sitemap_index.xml"))
    found, log = _found(ws, src)
    assert found == {
        site.url("/img/sm-moon.jpg"): site.url("/gallery.html"),
        off.url("/cdn/sm-coins.jpg"): site.url("/gallery.html"),
        site.url("/img/gallery-brick.jpg"): site.url("/gallery.html"),
        site.url("/img/sm-page-horse.jpg"): site.url("/sm-page.html"),
    }
    assert site.requested("/page1.html") == []              # sitemap pages: depth 0
    assert off.requested("/offsite.html") == []
    assert site.requested("/private/secret.html") == []
    assert any("evil.xml" in w and "EntitiesForbidden" in why for w, why in log.errors)


def test_rss_and_atom_feeds(deploy, web, monkeypatch) -> None:
    site, _ = web
    ws = _workspace(deploy, monkeypatch)
    src = SourceSettings(name="news", kind="feed", location=site.url("/feeds/rss.xml"),
                         urls=[site.url("/feeds/atom.xml")])
    found, log = _found(ws, src)
    s = site.url
    assert found == {
        s("/img/rss-desc.jpg"): s("/post1.html"), s("/img/rss-enclosure.jpg"): s("/post1.html"),
        s("/img/rss-media.jpg"): s("/post1.html"), s("/img/rss-thumb.jpg"): s("/post1.html"),
        s("/img/rss-c-800.jpg"): s("/post2.html"), s("/img/rss-c.jpg"): s("/post2.html"),
        s("/img/atom-enclosure.png"): s("/post3.html"),
        s("/feeds/atom-content.jpg"): s("/post3.html"),
    }
    assert not log.errors


def test_url_list(deploy, web, monkeypatch) -> None:
    site, _ = web
    ws = _workspace(deploy, monkeypatch)
    src = SourceSettings(name="list", kind="urls", urls=[
        site.url("/img/astronaut-1024.jpg"), site.url("/noext-image"),
        site.url("/gallery.html"), "ftp://example.org/x.jpg"])
    found, log = _found(ws, src)
    assert found == {site.url("/img/astronaut-1024.jpg"): None, site.url("/noext-image"): None,
                     site.url("/img/gallery-brick.jpg"): site.url("/gallery.html")}
    assert [w for w, _ in log.errors] == ["ftp://example.org/x.jpg"]


def _candidates(ws: Workspace) -> dict[str, Candidate]:
    with ws.session() as s:
        return {c.source: c for c in s.exec(select(Candidate)).all()}


def test_run_source_checks_records_and_skips_unchanged(deploy, web, photos,
                                                       monkeypatch) -> None:
    site, off = web
    ws = _workspace(deploy, monkeypatch)
    (deploy / "g").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        photos[name].save(deploy / "g" / f"{name}.png")
    add_paths(ws, [str(deploy / "g")], "portfolio")
    src = SourceSettings(name="shop", kind="page", location=site.url("/index.html"), depth=2)

    scan, results = run_source(ws, src)
    verdicts = {r.source.removeprefix(site.base): r.verdict.value for r in results}
    copies = {"/img/astronaut-1024.jpg", "/img/astronaut-small.jpg", "/img/coffee-2x.webp",
              "/img/coffee.jpg", "/img/og-chelsea.jpg"}
    for path in copies:
        assert verdicts[path] == "violation", path
    for path in ("/img/lightbox-hubble.jpg", "/assets/a1.jpg", "/img/p2-camera.png"):
        assert verdicts[path] == "clean", path
    assert verdicts[off.url("/cdn/twitter-rocket.jpg")] == "clean"
    rows = _candidates(ws)
    codes = {p: rows[site.url(p)].error_code for p in
             ("/private/hidden.jpg", "/redirect-private.jpg", "/fake.jpg")}
    assert codes == {"/private/hidden.jpg": "robots", "/redirect-private.jpg": "address_refused",
                     "/fake.jpg": "not_image"}
    assert site.requested("/private/hidden.jpg") == []
    assert all(r.source_name == "shop" for r in rows.values())
    assert rows[site.url("/assets/a1.jpg")].page_url == site.url("/page1.html")
    with ws.session() as s:
        row = s.get(Scan, scan.id)
    assert (row.kind, row.source, row.status) == ("page", "shop", "finished")
    assert (row.checked, row.errors, row.violations) == (9, 3, 5)
    assert "3 page(s) fetched" in row.stages_note

    before = {k: v.last_seen for k, v in rows.items()}
    scan2, again = run_source(ws, src)
    assert sorted(r.source.removeprefix(site.base) for r in again) == sorted(codes)
    sent = site.requested("/img/coffee.jpg")
    assert len(sent) == 2 and "if-none-match" in sent[1]
    assert "9 unchanged URL(s) (HTTP 304) not re-checked" in scan2.stages_note
    after = _candidates(ws)
    assert len(after) == len(rows)
    assert after[site.url("/img/coffee.jpg")].last_seen > before[site.url("/img/coffee.jpg")]


def test_folder_source_new_and_changed_files(deploy, photos, others, monkeypatch) -> None:
    ws = _workspace(deploy, monkeypatch)
    folder = deploy / "incoming"
    (folder / "sub").mkdir(parents=True)
    photos["rocket"].save(folder / "a.jpg")
    others["coins"].save(folder / "sub" / "b.png")
    (folder / ".hidden.jpg").write_bytes(b"x")
    src = SourceSettings(name="inbox", kind="folder", location="incoming")
    found, _ = _found(ws, src)
    assert set(found) == {str(folder / "a.jpg"), str(folder / "sub" / "b.png")}

    scan, results = run_source(ws, src)
    assert len(results) == 2 and scan.kind == "folder" and scan.source == "inbox"
    found, log = _found(ws, src)
    assert found == {} and log.unchanged_files == 2

    later = os.stat(folder / "sub" / "b.png").st_mtime + 3600
    os.utime(folder / "sub" / "b.png", (later, later))          # touched, same bytes
    Image.fromarray(255 - __import__("numpy").asarray(photos["rocket"])).save(folder / "a.jpg")
    found, log = _found(ws, src)
    assert set(found) == {str(folder / "a.jpg")} and log.unchanged_files == 1


def _drain(ws: Workspace, scan_id: int, timeout: float = 90.0) -> Scan:
    """Run the daemon's queue workers until scan ``scan_id`` is closed; returns its row."""
    st = AppState(ws, "", Metrics())
    stop = threading.Event()
    workers = Workers(st, 2, stop)
    workers.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with ws.session() as s:
                row = s.get(Scan, scan_id)
            if row.status != "running":
                return row
            time.sleep(0.05)
        raise AssertionError(f"scan {scan_id} still running; jobs: {queue.counts(ws.db)}")
    finally:
        stop.set()
        workers.join(10)


def test_scheduled_crawl_jobs_fetch_conditionally(deploy, web, photos, monkeypatch) -> None:
    """The daemon's scheduled run of a source fetches like ``monitor scan SOURCE``: the
    second run sends validators, gets 304 for every unchanged image and re-checks none."""
    site, _ = web
    ws = _workspace(deploy, monkeypatch)
    (deploy / "g").mkdir()
    photos["coffee"].save(deploy / "g" / "coffee.png")
    add_paths(ws, [str(deploy / "g")], "portfolio")
    paths = ("/img/coffee.jpg", "/img/og-chelsea.jpg", "/img/lightbox-hubble.jpg")
    ws.settings.sources.append(SourceSettings(name="shop", kind="urls",
                                              urls=[site.url(p) for p in paths]))
    answers: list[tuple[str, int]] = []
    for path in paths:
        def counted(req, inner=site.routes[path], path=path):
            reply = inner(req)
            answers.append((path, reply[0]))
            return reply
        monkeypatch.setitem(site.routes, path, counted)

    assert queue_source(ws, "shop") == 3
    with ws.session() as s:
        first_id = s.exec(select(Scan.id).where(Scan.source == "shop")).one()
    first = _drain(ws, first_id)
    assert sorted(answers) == sorted((p, 200) for p in paths)
    assert (first.kind, first.status, first.checked, first.errors, first.violations) == \
        ("urls", "finished", 3, 0, 1)
    rows = _candidates(ws)
    assert {c.scan_id for c in rows.values()} == {first_id} and len(rows) == 3

    answers.clear()
    assert queue_source(ws, "shop") == 3
    with ws.session() as s:
        second_id = max(s.exec(select(Scan.id).where(Scan.source == "shop")).all())
    second = _drain(ws, second_id)
    assert sorted(answers) == sorted((p, 304) for p in paths), "unchanged: 304, not re-sent"
    for path in paths:
        sent = site.requested(path)
        assert len(sent) == 2 and "if-none-match" in sent[1] and "if-none-match" not in sent[0]
    assert (second.status, second.checked, second.errors) == ("finished", 0, 0)
    assert "3 unchanged URL(s) (HTTP 304) not re-checked" in second.stages_note
    after = _candidates(ws)
    assert set(after) == set(rows) and all(c.scan_id == first_id for c in after.values())
    assert all(after[k].last_seen > rows[k].last_seen for k in rows)
    with ws.session() as s:
        jobs = s.exec(select(Job).where(Job.scan_id == second_id)).all()
    assert {j.status for j in jobs} == {"done"}
    assert {j.candidate_id for j in jobs} == {c.id for c in rows.values()}
