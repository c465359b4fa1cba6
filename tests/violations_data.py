"""Helpers for the review, export and mail tests: real violations through the real pipeline.

The gallery is three scikit-image photos; candidates are re-encoded, resized copies
(caught by the hash stage) fed through :func:`monitor.services.check.check_items` with the
fetch metadata a crawler would record. CLIP is off (no weights here).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from PIL import Image, ImageEnhance

from monitor.config import load_settings
from monitor.services.check import CandidateInput, check_items
from monitor.services.gallery import add_paths
from monitor.services.workspace import Workspace
from monitor.types import CheckResult
from tests.conftest import encode

RECIPIENTS = ["owner@example.org", "legal@example.org"]
HEADERS = {"content-type": "image/jpeg", "server": "nginx/1.25",
           "last-modified": "Tue, 07 May 2024 10:00:00 GMT"}


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ws(root: Path, photos, *, port: int | None = None, local: bool = False,
            extra: str = "", security: str = "none", username: str = "",
            templates_dir: str = "") -> Workspace:
    """A deployment in ``root`` (the cwd) with the gallery added; SMTP on ``port`` if given."""
    smtp = (f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\ntimeout = 5\n'
            f'username = "{username}"\n'
            f'sender = "monitor@example.net"\nrecipients = {RECIPIENTS!r}\n'.replace("'", '"')
            if port else "")
    (root / "config.toml").write_text(
        f"[clip]\nenabled = false\n[local]\nenabled = {str(local).lower()}\n"
        f'[report]\nthumb_side = 320\ntemplates_dir = "{templates_dir}"\n{smtp}{extra}')
    ws = Workspace(load_settings())
    gallery = root / "g"
    gallery.mkdir(exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea"):
        photos[name].save(gallery / f"{name}.png")
    add_paths(ws, [str(gallery)], "portfolio")
    return ws


def copy_of(im: Image.Image, scale: float = 0.7, colour: float = 1.15) -> bytes:
    """A resized, re-saturated JPEG re-encode (a typical re-upload)."""
    small = im.resize((round(im.width * scale), round(im.height * scale)))
    return encode(ImageEnhance.Color(small).enhance(colour), quality=80)


def record(ws: Workspace, url: str, data: bytes, *, page: str | None = None,
           status: int | None = 200, headers: dict | None = None) -> CheckResult:
    """Check one fetched candidate through the real pipeline."""
    [r] = check_items(ws, [CandidateInput(url, data=data, page_url=page, http_status=status,
                                          headers=headers if headers is not None else HEADERS)])
    return r


def populate(ws: Workspace, photos, others) -> list[CheckResult]:
    """Three violations on two hosts and one clean candidate."""
    results = [
        record(ws, "https://pirate.example/img/astro.jpg", copy_of(photos["astronaut"]),
               page="https://pirate.example/gallery.html"),
        record(ws, "https://pirate.example/img/cat.jpg", copy_of(photos["chelsea"], 0.5),
               page="https://pirate.example/cats.html"),
        record(ws, "https://copycat.example/c.jpg", copy_of(photos["coffee"], 0.8, 0.9),
               status=None, headers={}),
        record(ws, "https://copycat.example/camera.jpg", encode(others["camera"])),
    ]
    assert [r.verdict.value for r in results] == ["violation"] * 3 + ["clean"], results
    return results


@dataclass
class Sink:
    """aiosmtpd handler: keeps envelopes; ``reject`` (an SMTP reply) refuses DATA."""

    envelopes: list = field(default_factory=list)
    reject: str | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        if self.reject:
            return self.reject
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def start_smtp(port: int, sink: Sink, **kwargs) -> Controller:
    """A real SMTP server on 127.0.0.1:``port`` (its own thread and event loop)."""
    controller = Controller(sink, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop(),
                            **kwargs)
    controller.start()
    return controller
