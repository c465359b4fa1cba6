"""Markdown output of :mod:`bench.speed`: timing summaries, tables, the RESULTS.md section."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

START, END = "<!-- speed:start -->", "<!-- speed:end -->"


@dataclass(frozen=True)
class Timing:
    """Per-item latencies (seconds) of one variant; the best of the repeats per item."""

    latencies: np.ndarray

    @property
    def per_second(self) -> float:
        """Items per second when run one after the other."""
        return float(len(self.latencies) / max(self.latencies.sum(), 1e-12))

    def pct_ms(self, q: float) -> float:
        """The ``q``-th percentile latency in milliseconds."""
        return float(np.percentile(self.latencies, q) * 1e3)


def time_interleaved(items: Sequence, variants: dict[str, Callable], repeats: int = 2,
                     warmup: int = 3) -> dict[str, Timing]:
    """Run every variant on every item, interleaved item by item, ``repeats`` times.

    Interleaving puts all variants under the same background load (the machine is
    shared); each item keeps its fastest run per variant, which filters out
    preemptions without favouring any variant.
    """
    for item in items[:warmup]:
        for fn in variants.values():
            fn(item)
    best = {name: np.full(len(items), np.inf) for name in variants}
    for _ in range(repeats):
        for i, item in enumerate(items):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(item)
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
    return {name: Timing(lat) for name, lat in best.items()}


def time_threads(items: Sequence, variants: dict[str, Callable], threads: int,
                 repeats: int = 2) -> dict[str, float]:
    """Items per second (wall clock) of each variant mapped over all ``items`` by one
    pool of ``threads`` threads, best of ``repeats``; the variants alternate within
    each repeat, so they share the background load."""
    from concurrent.futures import ThreadPoolExecutor

    best = dict.fromkeys(variants, 0.0)
    with ThreadPoolExecutor(threads) as pool:
        for fn in variants.values():
            list(pool.map(fn, items[:2 * threads]))  # warm-up
        for _ in range(repeats):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                list(pool.map(fn, items))
                best[name] = max(best[name], len(items) / (time.perf_counter() - t0))
    return best


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def md_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals; '—' for None/NaN."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def replace_section(text: str, body: str, start: str = START, end: str = END) -> str:
    """``text`` with the part between ``start`` and ``end`` replaced by ``body``.

    The markers are kept; when absent, the section is appended at the end. Text
    outside the markers is left byte for byte as it was.
    """
    section = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text.split(start, 1)[1]:
        pre, rest = text.split(start, 1)
        return pre + section + rest.split(end, 1)[1]
    base = text.rstrip("\n") if text.strip() else "# Benchmark results"
    return base + "\n\n" + section + "\n"


def write_section(path: Path, body: str) -> None:
    """Replace (or add) the speed section of ``path`` (created when missing)."""
    from bench import report

    report.write_section(path, body, START, END)
