"""Table cells that fit their column: :class:`Short` shortens a path or URL in the middle,
:class:`Wrapped` keeps a value whole by wrapping between words and folders; and the csv and
JSON-lines writers of the list commands."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from monitor.outcome.exports import csv_cell as cell

ELLIPSIS = "…"
_URL = re.compile(r"([a-z][a-z0-9+.-]*://)([^/]*)", re.IGNORECASE)
_PIECE = re.compile(r"\s+|[^\s/]*/+|[^\s/]+")


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: whole when it fits, else cut in the middle
    with "…", keeping the file name (the part after the last "/") whole with as much of
    the start as fits and whole parent folders when the start can spare them:
    ``/home/al…/photos/IMG_0042.jpg``; a URL drops its scheme first and keeps its host
    (``pirate.example/…/astro.jpg``). A name too long by itself keeps its start and its
    end (the extension): ``astronaut_…load.jpg``; one that just fits is shown after the
    "…" alone."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:max(width, 0)]
    keep = 8  # characters of the start worth more than a parent folder
    if url := _URL.match(text):
        text, keep = text[len(url.group(1)):], len(url.group(2))
        if len(text) <= width:
            return text
    room = width - 1
    cut = text.rfind("/", 0, len(text) - 1)
    if cut <= 0 or len(text) - cut >= room:  # no folder, or the name alone is too long
        name = text[cut + 1:] if cut > 0 else text
        if len(name) < width:
            return ELLIPSIS + name
        end = (room + 1) // 2
        return name[:room - end] + ELLIPSIS + name[-end:]
    keep = min(keep, room - (len(text) - cut))
    while (parent := text.rfind("/", 0, cut)) > 0 and room - (len(text) - parent) >= keep:
        cut = parent  # one more whole folder before the name
    tail = text[cut:]
    return text[:room - len(tail)] + ELLIPSIS + tail


class Short:
    """A table cell shortened in the middle (:func:`shorten_middle`) to its column's width:
    one line, never wrapped, the file name kept."""

    def __init__(self, text: str, style: str = "") -> None:
        self.text, self.style = text, style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(cell_len(self.text), 8), cell_len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = Text(shorten_middle(self.text, options.max_width), self.style, no_wrap=True)
        text.truncate(options.max_width, overflow="ellipsis")  # wide (CJK) characters
        yield text


def break_offsets(line: str, width: int) -> list[int]:
    """Where to break ``line`` (no newline) so no part is wider than ``width`` cells: at
    spaces and after a "/", folding only a word or folder wider than ``width``."""
    breaks, col = [], 0
    for m in _PIECE.finditer(line):
        piece, n = m.group(), cell_len(m.group())
        if piece.isspace():
            col += n  # trailing spaces are stripped from each line
            continue
        if col and col + n > width:
            breaks.append(m.start())
            col = 0
        if n <= width:
            col += n
            continue
        for i, ch in enumerate(piece):  # wider than a line: fold it
            if col and col + cell_len(ch) > width:
                breaks.append(m.start() + i)
                col = 0
            col += cell_len(ch)
    return breaks


class Wrapped:
    """Text that must stay whole: wrapped at spaces and between a path's or URL's folders
    (a file name stays on one line while it fits), folded only where one part is wider
    than the column; never cut."""

    def __init__(self, text: str, style: str = "") -> None:
        self.text, self.style = text, style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        lines = self.text.splitlines() or [""]
        parts = [p for line in lines for p in _PIECE.findall(line) if not p.isspace()]
        return Measurement(max(map(cell_len, parts), default=0), max(map(cell_len, lines)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 1)
        for line in Text(self.text, self.style).split("\n", allow_blank=True):
            for part in line.divide(break_offsets(line.plain, width)):
                part.rstrip()
                part.no_wrap, part.overflow = True, "fold"
                yield part


def name_width(console: Console) -> int:
    """Widest column for a file name or URL beside a wide evidence column: about a quarter
    of the console, at least 24 (a camera's IMG_20240612_104233.jpg stays whole at 80
    columns)."""
    return max(24, console.width // 4)


def csv_writer(columns: Iterable[str]) -> Callable[[dict[str, Any]], None]:
    """Write a CSV header of ``columns`` on stdout; returns ``write(row)`` for one dict a
    line (its ``columns`` only, :func:`cell` values), flushed as it goes."""
    names = list(columns)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(names)

    def write(row: dict[str, Any]) -> None:
        writer.writerow([cell(row.get(c)) for c in names])
        sys.stdout.flush()
    return write


def print_jsonl_rows(rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object a line on stdout."""
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=str), flush=True)
