"""The one magic-byte table: what the first bytes of a body say it is.

Patterns follow the WHATWG MIME Sniffing standard (§6.1 image type patterns, §7.1
HTML and XML patterns), plus PPM (Netpbm) and JPEG XL signatures. Used by the HTTP
accept path (refuse what is not an image before queueing), the fetcher (refuse an HTML
page served as ``image/jpeg``) and the decoder (refuse SVG, HTML, PDF and text with a
clear message); the pipeline sniffs each candidate once and hands the result on.
"""

from __future__ import annotations

from typing import NamedTuple

HEAD_BYTES = 1445
"""Bytes examined (the WHATWG 'resource header' size)."""


class Signature(NamedTuple):
    """A magic-byte pattern: ``magic`` at ``offset`` means ``kind``; ``pillow`` is the
    Pillow format that opens it (None: monitor cannot decode it)."""

    offset: int
    magic: bytes
    kind: str
    pillow: str | None


SIGNATURES: tuple[Signature, ...] = (
    Signature(0, b"\xff\xd8\xff", "jpeg", "JPEG"),
    Signature(0, b"\x89PNG\r\n\x1a\n", "png", "PNG"),
    Signature(0, b"GIF87a", "gif", "GIF"), Signature(0, b"GIF89a", "gif", "GIF"),
    Signature(0, b"BM", "bmp", "BMP"),
    Signature(0, b"II*\x00", "tiff", "TIFF"), Signature(0, b"MM\x00*", "tiff", "TIFF"),
    Signature(0, b"\x00\x00\x01\x00", "ico", "ICO"),
    Signature(0, b"P4", "ppm", "PPM"), Signature(0, b"P5", "ppm", "PPM"),
    Signature(0, b"P6", "ppm", "PPM"),
    Signature(8, b"WEBP", "webp", "WEBP"),
    Signature(4, b"ftypavif", "avif", "AVIF"), Signature(4, b"ftypavis", "avif", "AVIF"),
    Signature(4, b"ftypheic", "heif", None), Signature(4, b"ftypheix", "heif", None),
    Signature(4, b"ftypmif1", "heif", None), Signature(4, b"ftypmsf1", "heif", None),
    Signature(0, b"\xff\x0a", "jxl", None), Signature(0, b"\x00\x00\x00\x0cJXL ", "jxl", None),
)
"""Image signatures, in the order they are tried."""

HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<h1",
             b"<div", b"<font", b"<table", b"<a", b"<style", b"<title", b"<b", b"<br", b"<p",
             b"<!--")
"""WHATWG HTML patterns: one of these tags followed by a space, ``>``, tab or newline."""

TEXT_KINDS = ((b"<svg", "SVG"), (b"<?xml", "XML/SVG"), (b"<!doctype html", "HTML"),
              (b"<html", "HTML"), (b"%pdf", "PDF"), (b"{", "JSON"), (b"<", "markup"))
"""Prefixes (after a BOM and white space, lower case) of documents that are not raster
images, with the name the decoder's refusal gives them."""

_BLANK = b"\xef\xbb\xbf \t\r\n\x0c"


def sniff(head: bytes) -> str | None:
    """What the first bytes say: an image kind (``"jpeg"``, ``"png"``, ... from
    :data:`SIGNATURES`; RIFF is checked for WebP), ``"svg"``, ``"html"``, or None."""
    for sig in SIGNATURES:
        if head[sig.offset:sig.offset + len(sig.magic)] == sig.magic:
            if sig.kind != "webp" or head[:4] == b"RIFF":
                return sig.kind
    text = head[:HEAD_BYTES].lstrip(_BLANK).lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "svg"
    for tag in HTML_TAGS:
        if text.startswith(tag) and text[len(tag):len(tag) + 1] in (b" ", b">", b"\t", b"\n"):
            return "html"
    return None


def pillow_format(kind: str | None) -> str | None:
    """The Pillow format that decodes an image ``kind`` from :func:`sniff`, or None."""
    return next((s.pillow for s in SIGNATURES if s.kind == kind), None)


def document_kind(head: bytes) -> str | None:
    """The name of a text document (SVG, HTML, PDF, JSON, markup) that ``head`` starts
    with, or None when it may be a raster image (:data:`TEXT_KINDS`)."""
    text = head[:512].lstrip(_BLANK).lower()
    return next((name for prefix, name in TEXT_KINDS if text.startswith(prefix)), None)
