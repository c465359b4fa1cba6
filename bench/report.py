"""Markdown output of :mod:`bench.accuracy`: machine facts, the table, RESULTS.md section."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"


def machine() -> str:
    """``nproc``, CPU model (``/proc/cpuinfo``) and RAM (``/proc/meminfo``, GiB)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model, ram = "unknown CPU", "unknown RAM"
    try:
        info = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
        model = found.group(1).strip() if found else model
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)[1])
        ram = f"{kib / 2**20:.1f} GiB RAM"
    except (OSError, TypeError):
        pass
    return f"nproc {cpus}, {model}, {ram}"


def pct(x: float) -> str:
    """A fraction in [0, 1] as a percentage with one decimal ('—' for NaN)."""
    return "—" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def threshold_text(kind: str, tau: float) -> str:
    """The flagging rule ``score > tau`` in the detector's own unit."""
    if tau == -math.inf:
        return "any match"
    if kind == "distance":
        return f"d ≤ {math.ceil(-tau) - 1}"
    if kind == "inliers":
        return f"inliers ≥ {math.floor(tau) + 1}"
    return f"score > {tau:.4f}"


def table(rows: list[dict], families: list[str]) -> str:
    """Markdown table: detector × recall per family (%), overall, threshold, FPR, µAP, ms."""
    head = ["detector", *families, "overall", "operating point", "FPR % (95 % upper)", "µAP",
            "ms/query CPU (wall)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], *(pct(r["recall"][f]) for f in families), f"**{pct(r['overall'])}**",
                 r["threshold"], f"{100 * r['fpr']:.2f} (≤ {100 * r['fpr_upper']:.2f})",
                 "—" if r["uap"] is None else f"{r['uap']:.3f}",
                 f"{r['ms'][0]:.0f} ({r['ms'][1]:.0f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(path: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace (or append) the section between markers ``start`` and ``end`` (default:
    the accuracy section's) in ``path``, created when missing
    (:func:`bench.speed_report.replace_section`)."""
    from bench.speed_report import replace_section

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, body, start, end), encoding="utf-8")
