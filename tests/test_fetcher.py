"""The polite, safe fetcher against a real threaded HTTP server on loopback.

Only loopback is ever connected to: the tests allow ``127.0.0.0/8`` explicitly
(not ``allow_private``), and every "private" or "metadata" target is refused
by the guard before any connection is attempted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.config.daemon import FetchSettings
from monitor.errors import AddressRefused, FetchError, HostNotFound, InputTooLarge, NotAnImage
from monitor.intake.address_policy import AddressPolicy, classify
from monitor.intake.fetcher import (
    Fetcher,
    FetchTimeout,
    HostLimiter,
    HTTPStatusError,
    MemoryValidatorCache,
    RobotsCache,
    RobotsDisallowed,
    TooManyRedirects,
    retry_after,
)
from tests.conftest import encode

UA = "monitor-test/1.0 (+tests)"
LOOPBACK = ("127.0.0.0/8",)

Reply = tuple[int, dict[str, str], bytes | Iterator[bytes]]
Route = Reply | Callable[[BaseHTTPRequestHandler], Reply]


class RouteServer:
    """A threaded HTTP/1.0 server on ``host`` serving a route table; logs every request.

    A route is ``(status, headers, body)`` or a callable taking the request handler
    and returning one; a body may be an iterator of chunks (streamed, no length).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with outer._lock:
                    outer.log.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = outer.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"no"))
                status, headers, body = route(self) if callable(route) else route
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if isinstance(body, bytes) and "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if isinstance(body, bytes):
                        self.wfile.write(body)
                    else:
                        for chunk in body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://{host}:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base + path

    def requested(self, path: str) -> list[dict[str, str]]:
        """Headers of every request made for ``path``."""
        with self._lock:
            return [h for p, h in self.log if p == path]

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


def conditional_image(body: bytes, ctype: str = "image/jpeg") -> Route:
    """An image route with ETag and Last-Modified that answers 304 to matching validators."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    modified = formatdate(1_700_000_000, usegmt=True)

    def route(req: BaseHTTPRequestHandler) -> Reply:
        headers = {"ETag": etag, "Last-Modified": modified, "Content-Type": ctype}
        if req.headers.get("If-None-Match") == etag:
            return 304, headers, b""
        return 200, headers, body
    return route


def sequence(*replies: Reply) -> Route:
    """A route answering with ``replies`` in turn, then repeating the last one."""
    state = {"n": 0}
    lock = threading.Lock()

    def route(_req: BaseHTTPRequestHandler) -> Reply:
        with lock:
            n = state["n"] = state["n"] + 1
        return replies[min(n, len(replies)) - 1]
    return route


def slow(delay: float) -> Route:
    def route(_req: BaseHTTPRequestHandler) -> Reply:
        time.sleep(delay)
        return 200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff late"
    return route


def trickle(_req: BaseHTTPRequestHandler) -> Reply:
    def body() -> Iterator[bytes]:
        yield b"\xff\xd8\xff\xe0"
        for _ in range(40):          # at most 8 s, 0.2 s apart: never a read timeout
            time.sleep(0.2)
            yield b"\x00" * 64
    return 200, {"Content-Type": "image/jpeg"}, body()


def endless(_req: BaseHTTPRequestHandler) -> Reply:
    def body() -> Iterator[bytes]:
        yield b"\xff\xd8\xff\xe0"
        for _ in range(4000):        # bounded: 256 MB at most
            yield b"\x00" * 65536
    return 200, {"Content-Type": "image/jpeg"}, body()


ROBOTS = b"User-agent: *\nDisallow: /\n\nUser-agent: monitor-test\nDisallow: /private/\n"
HTML = b"<!DOCTYPE html><html><head><title>Login</title></head><body>sign in</body></html>"


@pytest.fixture(scope="module")
def site(photos) -> Iterator[tuple[RouteServer, bytes]]:
    jpeg = encode(photos["coffee"])
    srv = RouteServer()
    srv.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"}, ROBOTS),
        "/a.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/octet": (200, {"Content-Type": "application/octet-stream"}, jpeg),
        "/hop": (302, {"Location": "/a.jpg"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/mapped": (302, {"Location": "http://[::ffff:169.254.169.254]/latest"}, b""),
        "/to-private-dir": (302, {"Location": "/private/x.jpg"}, b""),
        "/private/x.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/fake.jpg": (200, {"Content-Type": "image/jpeg"}, HTML),
        "/page.html": (200, {"Content-Type": "text/html"}, HTML),
        "/slow.jpg": slow(3.0),
        "/trickle.jpg": trickle,
        "/endless.jpg": endless,
        "/declared-big.jpg": (200, {"Content-Type": "image/jpeg",
                                    "Content-Length": "999999999"}, b""),
        "/cond.jpg": conditional_image(jpeg),
        "/busy.jpg": sequence((429, {"Retry-After": "1"}, b""),
                              (200, {"Content-Type": "image/jpeg"}, jpeg)),
        "/down.jpg": (503, {}, b"down"),
        "/long-wait.jpg": sequence((503, {"Retry-After": "120"}, b""),
                                   (200, {"Content-Type": "image/jpeg"}, jpeg)),
        "/gone.jpg": (404, {}, b"gone"),
    })
    yield srv, jpeg
    srv.close()


def settings(**kw) -> FetchSettings:
    base = dict(user_agent=UA, timeout=1.0, connect_timeout=1.0, retries=2, backoff=0.05,
                backoff_max=2.0, per_host_delay=0.0, per_host_concurrency=4)
    return FetchSettings(**(base | kw))


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(settings(), max_bytes=5_000_000, cache=MemoryValidatorCache(),
                 allow_networks=LOOPBACK) as f:
        yield f


def test_fetch_follows_redirect_and_types_result(site, fetcher) -> None:
    srv, jpeg = site
    res = fetcher.fetch(srv.url("/hop"))
    assert res.body == jpeg and res.status == 200 and not res.not_modified
    assert res.url == srv.url("/hop") and res.final_url == srv.url("/a.jpg")
    assert res.content_type == "image/jpeg" and res.sha256 == hashlib.sha256(jpeg).hexdigest()
    assert srv.requested("/a.jpg")[-1]["user-agent"] == UA
    assert fetcher.fetch(srv.url("/octet")).body == jpeg  # magic bytes beat a generic type


def test_loopback_refused_unless_allowed(site) -> None:
    srv, _ = site
    with Fetcher(settings(respect_robots=False)) as strict:
        with pytest.raises(AddressRefused, match="loopback address 127.0.0.1"):
            strict.fetch(srv.url("/a.jpg"))


@pytest.mark.parametrize("path", ["/metadata", "/mapped"])
def test_redirect_to_metadata_refused_even_with_allow_private(site, path) -> None:
    srv, _ = site
    with Fetcher(settings(allow_private=True), allow_networks=LOOPBACK) as f:
        with pytest.raises(AddressRefused, match="cloud metadata address 169.254.169.254"):
            f.fetch(srv.url(path))


def test_guard_checks_the_dns_answer(site, monkeypatch) -> None:
    srv, jpeg = site
    real = socket.getaddrinfo
    answers = {"metadata.test": "169.254.169.254", "intranet.test": "10.1.2.3",
               "rebound.test": "127.0.0.1"}

    def fake(host, port, *args, **kw):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    port = srv.httpd.server_port
    with Fetcher(settings(respect_robots=False), allow_networks=LOOPBACK) as f:
        with pytest.raises(AddressRefused, match="metadata"):
            f.fetch(f"http://metadata.test:{port}/a.jpg")
        with pytest.raises(AddressRefused, match="private address 10.1.2.3"):
            f.fetch(f"http://intranet.test:{port}/a.jpg")
        # connected to the vetted address, with the original Host header
        assert f.fetch(f"http://rebound.test:{port}/a.jpg").body == jpeg
    assert srv.requested("/a.jpg")[-1]["host"] == f"rebound.test:{port}"


def test_ipv6_addresses_carrying_ipv4_are_judged_as_it() -> None:
    """6to4, NAT64 and Teredo addresses embed an IPv4 address: 2002:a9fe:a9fe::/48 is the
    metadata service in disguise (issue 19: counted as public before)."""
    cases = {"2002:a9fe:a9fe::1": "forbidden", "2002:7f00:1::1": "private",
             "2002:0a00:0001::1": "private", "2002:0808:0808::1": "public",
             "64:ff9b::a9fe:a9fe": "forbidden", "64:ff9b::808:808": "public",
             "64:ff9b:1::a00:1": "private",
             "2001:0:4136:e378:8000:63bf:3fff:fdd2": "private"}  # Teredo client 192.0.2.45
    for text, expected in cases.items():
        assert classify(ipaddress.ip_address(text))[0] == expected, text
    with pytest.raises(AddressRefused, match="metadata"):
        AddressPolicy.build(False).check("x", ipaddress.ip_address("2002:a9fe:a9fe::1"))


def test_address_classes() -> None:
    cases = {"8.8.8.8": "public", "2606:4700::1111": "public", "127.0.0.1": "private",
             "::1": "private", "10.0.0.1": "private", "192.168.1.1": "private",
             "172.16.5.4": "private", "100.64.0.1": "private", "fc00::1": "private",
             "::ffff:127.0.0.1": "private", "169.254.169.254": "forbidden",
             "169.254.10.10": "forbidden", "fe80::1": "forbidden", "224.0.0.1": "forbidden",
             "0.0.0.0": "forbidden", "240.0.0.1": "forbidden", "100.100.100.200": "forbidden",
             "::ffff:169.254.169.254": "forbidden", "fd00:ec2::254": "forbidden"}
    for text, expected in cases.items():
        assert classify(ipaddress.ip_address(text))[0] == expected, text
    open_policy = AddressPolicy.build(True, ["169.254.0.0/16"])
    open_policy.check("x", ipaddress.ip_address("10.0.0.1"))
    with pytest.raises(AddressRefused):   # an explicit allow cannot unlock link-local
        open_policy.check("x", ipaddress.ip_address("169.254.1.1"))
    loop_only = AddressPolicy.build(False, LOOPBACK)
    loop_only.check("x", ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(AddressRefused, match="allow_private"):
        loop_only.check("x", ipaddress.ip_address("192.168.0.1"))


def test_slow_trickle_and_endless_bodies(site) -> None:
    srv, _ = site
    with Fetcher(settings(retries=0), max_bytes=1_000_000, allow_networks=LOOPBACK) as f:
        t0 = time.monotonic()
        with pytest.raises(FetchTimeout, match="timed out"):
            f.fetch(srv.url("/slow.jpg"))
        with pytest.raises(FetchTimeout, match="within 1 s"):
            f.fetch(srv.url("/trickle.jpg"))
        with pytest.raises(InputTooLarge, match="exceeds 1000000 bytes"):
            f.fetch(srv.url("/endless.jpg"))
        with pytest.raises(InputTooLarge, match="Content-Length 999999999"):
            f.fetch(srv.url("/declared-big.jpg"))
        assert time.monotonic() - t0 < 5


def test_429_retried_honouring_retry_after(site, fetcher) -> None:
    srv, jpeg = site
    t0 = time.monotonic()
    assert fetcher.fetch(srv.url("/busy.jpg")).body == jpeg
    assert time.monotonic() - t0 >= 0.95          # waited Retry-After: 1, not backoff 0.05
    assert len(srv.requested("/busy.jpg")) == 2


def test_503_gives_up_with_backoff_and_cap(site) -> None:
    srv, jpeg = site
    waits: list[float] = []
    with Fetcher(settings(backoff=0.05, backoff_max=0.3, retries=3), sleep=waits.append,
                 allow_networks=LOOPBACK) as f:
        with pytest.raises(HTTPStatusError, match="HTTP 503.*gave up after 3 retries") as info:
            f.fetch(srv.url("/down.jpg"))
        assert info.value.status == 503 and info.value.code == "http_status"
        assert waits == [0.05, 0.1, 0.2]
        assert len(srv.requested("/down.jpg")) == 4
        waits.clear()
        assert f.fetch(srv.url("/long-wait.jpg")).body == jpeg
        assert waits == [0.3]                    # Retry-After: 120 capped by backoff_max
        with pytest.raises(HTTPStatusError, match="HTTP 404"):
            f.fetch(srv.url("/gone.jpg"))
        assert len(srv.requested("/gone.jpg")) == 1   # 404 is not retried


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    assert retry_after("7") == 7.0
    assert retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_html_served_as_jpeg_refused(site, fetcher) -> None:
    srv, _ = site
    with pytest.raises(NotAnImage, match="served as image/jpeg but the body is an HTML page"):
        fetcher.fetch(srv.url("/fake.jpg"))
    with pytest.raises(NotAnImage, match=r"an HTML page \(text/html\), not an image"):
        fetcher.fetch(srv.url("/page.html"))
    assert fetcher.fetch(srv.url("/page.html"), expect="document").body == HTML


def test_conditional_request_gets_304(site, fetcher) -> None:
    srv, jpeg = site
    first = fetcher.fetch(srv.url("/cond.jpg"), conditional=True)
    assert first.status == 200 and first.body == jpeg
    assert "if-none-match" not in srv.requested("/cond.jpg")[0]
    again = fetcher.fetch(srv.url("/cond.jpg"), conditional=True)
    sent = srv.requested("/cond.jpg")[1]
    assert sent["if-none-match"].startswith('"') and "GMT" in sent["if-modified-since"]
    assert again.not_modified and again.status == 304 and again.body == b""
    assert again.sha256 == first.sha256 == again.cached_sha256
    assert fetcher.fetch(srv.url("/cond.jpg")).body == jpeg   # unconditional: full body


def test_robots_txt_honoured_and_cached(site, fetcher) -> None:
    srv, jpeg = site
    with pytest.raises(RobotsDisallowed, match="disallows"):
        fetcher.fetch(srv.url("/private/x.jpg"))
    with pytest.raises(RobotsDisallowed):          # a redirect into a disallowed path
        fetcher.fetch(srv.url("/to-private-dir"))
    assert srv.requested("/private/x.jpg") == []
    assert fetcher.fetch(srv.url("/a.jpg")).body == jpeg
    with Fetcher(settings(user_agent="otherbot/2.0"), allow_networks=LOOPBACK) as other:
        with pytest.raises(RobotsDisallowed, match="otherbot"):
            other.fetch(srv.url("/a.jpg"))
    before = len(srv.requested("/robots.txt"))
    fetcher.fetch(srv.url("/a.jpg"))
    assert len(srv.requested("/robots.txt")) == before   # cached per host


def test_robots_status_rules() -> None:
    answers = {"http://a": (200, "User-agent: *\nDisallow: /x\nCrawl-delay: 3\n"),
               "http://b": (404, ""), "http://c": (503, ""), "http://d": (0, ""),
               "http://e": (429, "")}
    delays: list[tuple[str, float]] = []
    cache = RobotsCache(UA, lambda u: answers[u.removesuffix("/robots.txt")],
                        lambda h, d: delays.append((h, d)))
    assert not cache.allowed("http://a/x/1.jpg") and cache.allowed("http://a/y.jpg")
    assert delays == [("a", 3.0)]
    assert cache.allowed("http://b/anything")              # 4xx: no rules
    for host in ("c", "d", "e"):                           # unreachable: disallow all
        assert not cache.allowed(f"http://{host}/anything")


def test_other_refusals(site, fetcher) -> None:
    srv, _ = site
    with pytest.raises(TooManyRedirects, match="more than 5 redirects"):
        fetcher.fetch(srv.url("/loop"))
    with pytest.raises(FetchError, match="only http"):
        fetcher.fetch("file:///etc/passwd")


def test_per_host_delay_and_concurrency(site) -> None:
    srv, _ = site
    with Fetcher(settings(per_host_delay=0.3), allow_networks=LOOPBACK) as f:
        f.fetch(srv.url("/a.jpg"))                 # also loads robots.txt
        t0 = time.monotonic()
        for _ in range(3):
            f.fetch(srv.url("/a.jpg"))
        assert time.monotonic() - t0 >= 0.85

    limiter = HostLimiter(concurrency=2, delay=0.0)
    live, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        with limiter.slot("h"):
            with lock:
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            time.sleep(0.05)
            with lock:
                live[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_unknown_host_is_said_so_not_blamed_on_robots(monkeypatch) -> None:
    """A host DNS does not know is a HostNotFound at once (not retried), not "robots.txt
    disallows" (issue 19); a temporary DNS failure is still retried."""
    calls: list[str] = []

    def resolver(host, *args, **kw):
        calls.append(host)
        code = socket.EAI_AGAIN if host.startswith("flaky") else socket.EAI_NONAME
        raise socket.gaierror(code, "resolver says no")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with Fetcher(settings(retries=2, backoff=0.0)) as f:
        with pytest.raises(HostNotFound, match="no-such-host.invalid does not resolve"):
            f.fetch("http://no-such-host.invalid/a.jpg")
        assert calls == ["no-such-host.invalid"]
        with pytest.raises(FetchError) as info:
            f.fetch("http://flaky.example/a.jpg", robots=False)
        assert not isinstance(info.value, HostNotFound)
        assert calls.count("flaky.example") == 3
