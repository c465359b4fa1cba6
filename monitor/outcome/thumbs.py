"""Thumbnails of the protected and the found image, with the matched area drawn in pixels:
where the copy is on the found image, and which part of the protected image it copies.

The outline is drawn into the pixels (not an overlay) so it survives printing,
e-mail clients and copies of the file. Stored copies are read through the deployment's
blob store (a folder or a bucket, :mod:`monitor.outcome.stored`). A missing or unreadable
stored copy becomes a placeholder with a note, never a crash.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image, ImageDraw

from monitor.errors import BlobNotFound, MonitorError
from monitor.imaging.decode import DecodedImage, DecodeLimits, decode_bytes, decode_file
from monitor.outcome.items import ReportItem
from monitor.store import Store

MARK_COLOUR = (255, 0, 255)
"""Colour (RGB) of the matched-area outline drawn into the found image, and of the copied
part's outline drawn into the protected image."""
HALO_COLOUR = (255, 255, 255)
"""Colour of the thin halo under the outline, so it reads on dark and magenta areas alike."""


@dataclass(frozen=True)
class Thumb:
    """A JPEG thumbnail (``data``; ``src`` a data URI or a ``cid:`` URL) or a placeholder.

    A placeholder has ``src`` None and says why in ``note``. Sizes are pixels.
    """

    src: str | None
    width: int = 0
    height: int = 0
    note: str = ""
    data: bytes | None = None


def draw_match(image: Image.Image, original: tuple[int, int], quad: list | None,
               region: list | None) -> Image.Image:
    """Draw the matched area on a copy of ``image``.

    ``quad`` (four [x, y] corners, drawn as a closed polygon) or else ``region``
    ([x0, y0, x1, y1] box) are in pixels of the original image of size
    ``original`` (width, height); they are scaled to ``image``. The line is
    :data:`MARK_COLOUR`, about 1 % of the longest side wide (at least 3 px),
    over a 1 px-wider :data:`HALO_COLOUR` halo on each side.
    """
    out = image.copy()
    sx, sy = out.width / original[0], out.height / original[1]
    if quad and len(quad) >= 3:
        pts = [(float(x) * sx, float(y) * sy) for x, y in quad]
    elif region and len(region) == 4:
        x0, y0, x1, y1 = region
        pts = [(x0 * sx, y0 * sy), (x1 * sx, y0 * sy), (x1 * sx, y1 * sy), (x0 * sx, y1 * sy)]
    else:
        return out
    width = max(3, round(max(out.size) / 100))
    draw = ImageDraw.Draw(out)
    closed = [*pts, pts[0]]
    draw.line(closed, fill=HALO_COLOUR, width=width + 2, joint="curve")
    draw.line(closed, fill=MARK_COLOUR, width=width, joint="curve")
    return out


def jpeg_bytes(image: Image.Image) -> bytes:
    """JPEG (quality 85, no chroma subsampling so thin coloured lines keep their colour)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=85, subsampling=0)
    return buf.getvalue()


def data_uri(jpeg: bytes) -> str:
    """An RFC 2397 ``data:`` URI for JPEG bytes."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@runtime_checkable
class BlobImageLoader(Protocol):
    """A store that decodes its stored objects itself (the services layer's ``Workspace``,
    with the decode limits and working size of its matching engine)."""

    def load_blob(self, key: str) -> DecodedImage:
        """Decode the object ``key`` of the blob store."""
        ...


def load_stored(ws: Store, rel: str) -> DecodedImage:
    """Decode the stored object ``rel`` of the deployment's blob store: with
    ``ws.load_blob`` when ``ws`` has it (:class:`BlobImageLoader`), else with the
    ``decode.*`` limits of its settings (from its file when the store is a folder).

    Raises:
        BlobNotFound: nothing is stored at ``rel``.
        StoreError: the blob store cannot be read.
        DecodeError: the bytes are not a usable image.
        OSError: the file cannot be read.
        ValueError: ``rel`` is not a valid key.
    """
    if isinstance(ws, BlobImageLoader):
        return ws.load_blob(rel)
    d = ws.settings.decode
    limits = DecodeLimits(d.max_bytes, d.max_pixels, d.work_side)
    blobs = ws.blobs
    path = blobs.local_path(rel)
    if path is None:
        return decode_bytes(blobs.get(rel), limits)
    if not path.is_file():
        raise BlobNotFound(f"blob store {blobs.url}: no object {rel}")
    return decode_file(path, limits)


def make_thumb(ws: Store, rel: str | None, sha256: str | None, what: str,
               quad: list | None = None, region: list | None = None,
               side: int | None = None) -> Thumb:
    """Thumbnail (longest side ``side``, default ``report.thumb_side`` pixels) of a stored file.

    ``rel`` is its key in the deployment's blob store (the relative path under the data
    folder by default). The matched area is drawn when ``quad`` or ``region`` is given.
    The file's sha256 is checked against the recorded one and a mismatch is noted. Never
    raises: an absent or unreadable file (or an unreachable store) is a placeholder.
    """
    if not rel:
        return Thumb(None, note=f"no {what} was archived")
    try:
        decoded = load_stored(ws, rel)
    except BlobNotFound:
        return Thumb(None, note=f"{what} missing: {rel}")
    except (MonitorError, OSError, ValueError) as exc:
        return Thumb(None, note=f"{what} unreadable ({rel}): {exc}")
    image = decoded.image.copy()
    side = side or ws.settings.report.thumb_side
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image = draw_match(image, (decoded.width, decoded.height), quad, region)
    note = ""
    if sha256 and decoded.sha256 != sha256:
        note = f"{what} altered: its sha256 is {decoded.sha256}, not the recorded one"
    jpeg = jpeg_bytes(image)
    return Thumb(data_uri(jpeg), image.width, image.height, note, jpeg)


class ThumbCache:
    """Makes each item's pair of thumbnails once per render (items often share an image)."""

    def __init__(self, ws: Store, side: int | None = None) -> None:
        self.ws, self.side = ws, side
        self._cache: dict[tuple, Thumb] = {}

    def thumb(self, rel: str | None, sha: str | None, what: str, quad=None, region=None) -> Thumb:
        """:func:`make_thumb`, memoised on its arguments."""
        key = (rel, sha, what, json.dumps(quad), json.dumps(region))
        if key not in self._cache:
            self._cache[key] = make_thumb(self.ws, rel, sha, what, quad, region, self.side)
        return self._cache[key]

    def pair(self, item: ReportItem) -> tuple[Thumb, Thumb]:
        """(protected, found) thumbnails of ``item``: the copied part of the protected image
        (``target_region``) outlined on the first, where it was found on the second
        (:func:`found_outline`)."""
        return (self.thumb(item.stored_path, item.protected_sha256, "stored protected copy",
                           region=item.target_region),
                self.thumb(item.evidence_path, item.candidate_sha256, "evidence file",
                           *found_outline(item)))


def found_outline(item: ReportItem) -> tuple[list | None, list | None]:
    """``(quad, region)`` to draw on the found image: the projected quad, unless none of its
    corners lies on the found image (a crop of the protected image: the quad runs around
    it, off the picture), then the region, the part of the found image that is the copy."""
    size = item.candidate_size
    if item.quad and size and not any(-1 <= x <= size[0] + 1 and -1 <= y <= size[1] + 1
                                      for x, y in item.quad):
        return None, item.region
    return item.quad, item.region
