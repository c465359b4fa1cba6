"""Images and links in an HTML document (BeautifulSoup 4 with the stdlib ``html.parser``).

BeautifulSoup tolerates the broken markup real sites serve, detects the
encoding of raw bytes, and with ``html.parser`` needs no compiled backend.
Found: ``img`` ``src``/``srcset`` (and the common lazy-loading ``data-src``,
``data-srcset``), ``picture > source[srcset]``, ``og:image`` (also ``:url`` and
``:secure_url``), ``twitter:image`` (also ``:src``), ``link[rel=image_src]`` and
``a``/``area`` links whose path ends in an image extension. For a ``srcset``
only its largest candidate is taken (largest ``w``, else largest ``x``; HTML
Living Standard §4.8.4.2). Relative URLs are resolved against ``<base href>``.

Each image also gets its :class:`~monitor.types.PageContext`: the page's
``<title>``, the ``img``'s ``alt`` and ``title`` attributes (for a ``picture > source``
those of the picture's ``img``; for an image link, of the ``img`` inside the link, else
the link's ``title``) and the ``<figcaption>`` of the enclosing ``<figure>``. An image
found several times keeps the first context and fills its gaps from the later ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

from monitor.intake.crawl.base import clean_url, looks_like_image
from monitor.types import PageContext, clean_text

IMG_SRC_ATTRS = ("src", "data-src", "data-lazy-src", "data-original")
IMG_SRCSET_ATTRS = ("srcset", "data-srcset")
META_IMAGE_KEYS = frozenset({"og:image", "og:image:url", "og:image:secure_url",
                             "twitter:image", "twitter:image:src"})


@dataclass
class PageContent:
    """Absolute, fragment-free URLs found in one document, in document order, and how
    each image appears there (``contexts``, keyed by image URL)."""

    base: str
    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    title: str | None = None
    contexts: dict[str, PageContext] = field(default_factory=dict)


def parse_srcset(value: str) -> list[tuple[str, int | None, float | None]]:
    """``[(url, width_w, density_x)]`` of a ``srcset`` attribute.

    Follows the HTML parsing algorithm: URLs may contain commas; a candidate ends
    at a comma outside parentheses in its descriptors.
    """
    out: list[tuple[str, int | None, float | None]] = []
    pos, n = 0, len(value)
    while pos < n:
        while pos < n and (value[pos].isspace() or value[pos] == ","):
            pos += 1
        start = pos
        while pos < n and not value[pos].isspace():
            pos += 1
        url, descriptors = value[start:pos], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start, depth = pos, 0
            while pos < n and not (value[pos] == "," and depth == 0):
                depth += {"(": 1, ")": -1}.get(value[pos], 0)
                pos += 1
            descriptors = value[start:pos]
        if not url:
            continue
        width = density = None
        for d in descriptors.split():
            try:
                if d[-1:] in "wW":
                    width = int(d[:-1])
                elif d[-1:] in "xX":
                    density = float(d[:-1])
            except ValueError:
                continue
        out.append((url, width, density))
    return out


def largest_candidate(srcset: str) -> str | None:
    """The URL of the largest ``srcset`` candidate (largest ``w``, else largest ``x``)."""
    cands = parse_srcset(srcset)
    if not cands:
        return None
    if any(w is not None for _, w, _ in cands):
        return max(cands, key=lambda c: c[1] or 0)[0]
    return max(cands, key=lambda c: c[2] if c[2] is not None else 1.0)[0]


def _soup(markup: bytes | str, charset: str | None) -> BeautifulSoup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        if isinstance(markup, bytes):
            return BeautifulSoup(markup, "html.parser", from_encoding=charset)
        return BeautifulSoup(markup, "html.parser")


def _attr(tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return (value or "").strip()


def _caption(tag) -> str | None:
    """The text of the ``<figcaption>`` of the ``<figure>`` around ``tag``, if any."""
    figure = tag.find_parent("figure")
    caption = figure.find("figcaption") if figure is not None else None
    return clean_text(caption.get_text(" ")) if caption is not None else None


def _context(tag, page_title: str | None) -> PageContext | None:
    """How the image of ``tag`` (an ``img``, ``source``, ``a`` or ``area``) appears."""
    img = tag
    if tag.name == "source":
        img = tag.find_parent("picture")
        img = img.find("img") if img is not None else None
    elif tag.name in ("a", "area"):
        img = tag.find("img") if tag.name == "a" else None
    alt = _attr(img, "alt") if img is not None else _attr(tag, "alt")
    title = _attr(img, "title") if img is not None else ""
    return PageContext.of(page_title=page_title, alt=alt, caption=_caption(tag),
                          image_title=title or _attr(tag, "title"))


def parse_html(markup: bytes | str, url: str, charset: str | None = None) -> PageContent:
    """Images and links of a document fetched from ``url`` (its final URL), with the
    context each image appears in."""
    soup = _soup(markup, charset)
    base_tag = soup.find("base", href=True)
    base = clean_url(_attr(base_tag, "href"), url) if base_tag else None
    title_tag = soup.find("title")
    page = PageContent(base or url,
                       title=clean_text(title_tag.get_text(" ")) if title_tag else None)
    here = PageContext.of(page_title=page.title)

    def add_image(raw: str, tag) -> None:
        found = clean_url(raw, page.base)
        if not found:
            return
        if found not in page.images:
            page.images.append(found)
        ctx = here if tag.name in ("meta", "link") else _context(tag, page.title)
        if ctx is not None:
            page.contexts[found] = page.contexts[found].filled(ctx) \
                if found in page.contexts else ctx

    for tag in soup.find_all(["img", "source", "meta", "link", "a", "area"]):
        name = tag.name
        if name in ("img", "source"):
            for attr in IMG_SRCSET_ATTRS:
                best = largest_candidate(_attr(tag, attr))
                if best:
                    add_image(best, tag)
            if name == "img":
                for attr in IMG_SRC_ATTRS:
                    if _attr(tag, attr):
                        add_image(_attr(tag, attr), tag)
        elif name == "meta":
            key = (_attr(tag, "property") or _attr(tag, "name")).lower()
            if key in META_IMAGE_KEYS and _attr(tag, "content"):
                add_image(_attr(tag, "content"), tag)
        elif name == "link":
            if "image_src" in _attr(tag, "rel").lower().split() and _attr(tag, "href"):
                add_image(_attr(tag, "href"), tag)
        else:
            target = clean_url(_attr(tag, "href"), page.base)
            if target is None:
                continue
            if looks_like_image(target):
                add_image(target, tag)
            elif target not in page.links:
                page.links.append(target)
    return page


def images_in_fragment(markup: str, base: str) -> list[str]:
    """Images in an HTML fragment (feed descriptions and content), resolved against ``base``."""
    if "<" not in markup:
        return []
    return parse_html(markup, base).images
