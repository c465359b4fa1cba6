"""Terminal presentation for the CLI (Rich tables and progress bars, JSON lines)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.outcome.jsonl import result_json
from monitor.services.workspace import Workspace
from monitor.types import CheckResult, Verdict

out = Console()
COLOURS = {"violation": "bold red", "review": "yellow", "allowed": "cyan", "clean": "green",
           "error": "magenta"}


@contextmanager
def progress(console: Console, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """A Rich progress counter on stderr; yields a ``tick()`` callable."""
    if not enabled:
        yield lambda: None
        return
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    with bar:
        task = bar.add_task(label, total=None)
        yield lambda: bar.advance(task)


def warn_unavailable(console: Console, ws: Workspace) -> None:
    """Print one short note per enabled stage that cannot run: the reason without its
    parentheses, and where the full reason and fix are (``monitor doctor``)."""
    for s in ws.engine().statuses():
        if s.enabled and not s.available:
            reason = re.sub(r"\s*\([^()]*\)", "", s.reason)
            console.print(f"[yellow]stage {s.name} skipped[/]: {reason}; `monitor doctor` "
                          f"shows the fix, {s.name}.enabled = false silences this")


def print_jsonl(info: dict[int, tuple[str, str, dict]], result: CheckResult) -> None:
    """One candidate as one JSON line on stdout (the DESIGN.md contract).

    ``info`` is :meth:`Workspace.gallery_info`, read once per command.
    """
    print(json.dumps(result_json(result, info)), flush=True)


def results_table(ws: Workspace, results: list[CheckResult], only_flagged: bool = False) -> None:
    """A table of candidates with verdict, best match and its evidence."""
    info = ws.gallery_info()
    table = Table("candidate", "verdict", "gallery image", "stage", "score", "evidence")
    for col in table.columns:
        col.overflow = "fold"
    for r in results:
        if only_flagged and r.verdict in (Verdict.CLEAN,):
            continue
        best = r.outcomes[0].match if r.outcomes else None
        evidence = r.error or (_evidence(best) if best else "")
        gallery = Path(info.get(best.gallery_id, ("?",))[0]).name if best else ""
        table.add_row(Path(r.source).name if not r.source.startswith("http") else r.source,
                      f"[{COLOURS[r.verdict.value]}]{r.verdict.value}[/]", gallery,
                      best.stage if best else "", f"{best.score:.2f}" if best else "", evidence)
    out.print(table)
    counts = {v.value: sum(r.verdict == v for r in results) for v in Verdict}
    out.print("  ".join(f"[{COLOURS[k]}]{k}[/] {n}" for k, n in counts.items() if n)
              or "nothing checked")


def _evidence(m) -> str:
    parts = []
    if m.distance is not None:
        parts.append(f"hamming {m.distance}/64")
    if m.cosine is not None:
        parts.append(f"cosine {m.cosine:.3f}")
    if m.inliers is not None:
        parts.append(f"{m.inliers} inliers")
    if m.agreement is not None:
        parts.append(f"dense agreement {m.agreement:.0%}")
    if m.region:
        parts.append("region " + ",".join(map(str, m.region)))
    if m.query_overlap is not None:
        parts.append(f"the copy fills {m.query_overlap:.0%} of the found image")
    if m.target_overlap is not None:
        parts.append(f"reproduces {m.target_overlap:.0%} of the protected image")
    return "; ".join(parts)


class ScanFacts(Protocol):
    """What :func:`scan_summary` reads of a scan (a ``Scan`` row of the store)."""

    id: int | None
    stages_note: str


def scan_summary(console: Console, scan: ScanFacts, results: list[CheckResult]) -> None:
    """One line: the scan's counts and any stage note."""
    console.print(f"scan {scan.id}: {len(results)} candidates, "
                  f"{sum(r.verdict == Verdict.VIOLATION for r in results)} violations, "
                  f"{sum(r.verdict == Verdict.REVIEW for r in results)} for review, "
                  f"{sum(r.verdict == Verdict.ERROR for r in results)} errors")
    if scan.stages_note:
        console.print(f"[yellow]note[/]: {scan.stages_note}")


def doctor(console: Console, config: Path | None) -> bool:
    """Check config, database, rules and every stage; print findings; True when all usable."""
    from monitor.config import config_path, load_settings
    from monitor.errors import MonitorError

    try:
        ws = Workspace(load_settings(config))
        rules = ws.rules.rules
    except MonitorError as exc:
        console.print(f"[red]✗[/] {exc}")
        return False
    table = Table("check", "state", "detail")
    path = config or config_path()
    if path.exists():
        table.add_row("config", "[green]ok[/]", str(path))
    else:
        table.add_row("config", "[yellow]defaults[/]",
                      f"not found: defaults in use (`monitor init` writes one): {path}")
    table.add_row("database", "[green]ok[/]", ws.settings.database_url)
    table.add_row("rules", "[green]ok[/]", f"{len(rules)} rule(s): "
                  + ", ".join(f"{r.name} ({r.verdict})" for r in rules))
    sizes = ws.gallery_sizes()
    table.add_row("gallery", "[green]ok[/]" if sizes else "[yellow]empty[/]",
                  ", ".join(f"{n}: {k} image(s)" for n, k in sizes.items())
                  or "no protected image yet: monitor gallery add PATH")
    for s in ws.engine().statuses():
        state = ("[green]available[/]" if s.available else
                 "[dim]disabled[/]" if not s.enabled else "[yellow]unavailable[/]")
        table.add_row(f"stage {s.name}", state,
                      " ".join(x for x in (s.reason, f"fix: {s.fix}" if s.fix else "") if x))
    out.print(table)
    return True
