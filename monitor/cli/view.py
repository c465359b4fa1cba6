"""Terminal presentation for the CLI (Rich tables and progress bars, JSON lines, CSV).

Tables fit the console's width (80 columns in a pipe): short enums never wrap, a long
path or URL is shortened in the middle to its column (:class:`Short`, the start and the
file name kept), and a value that must stay whole wraps between its words and folders
(:class:`Wrapped`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from monitor.cli.cells import (  # noqa: F401 (re-exported for the other commands)
    Short,
    Wrapped,
    break_offsets,
    cell,
    csv_writer,
    name_width,
    print_jsonl_rows,
    shorten_middle,
)
from monitor.outcome.jsonl import result_json
from monitor.services.health import redacted
from monitor.services.workspace import Workspace
from monitor.types import CheckResult, Verdict

out = Console()
COLOURS = {"violation": "bold red", "review": "yellow", "allowed": "cyan", "clean": "green",
           "error": "magenta"}
VERDICT_WIDTH = max(map(len, COLOURS))
"""Width of a verdict column: the longest verdict ("violation") never wraps."""
STATUS_WIDTH = len("confirmed")
"""Width of a review status column (open, confirmed, dismissed, licensed)."""


@contextmanager
def progress(console: Console, label: str, enabled: bool,
             total: int | None = None) -> Iterator[Callable[[], None]]:
    """A Rich progress bar on stderr, with the time left when ``total`` is known; yields a
    thread-safe ``tick(n=1)`` callable (Rich's ``Progress`` takes updates from any thread)."""
    if not enabled:
        yield lambda n=1: None
        return
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if total is not None:
        columns += [TextColumn("left"), TimeRemainingColumn()]
    bar = Progress(*columns, console=console, transient=True)
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def growing_progress(console: Console, label: str, total: int | None = None
                     ) -> Iterator[tuple[Callable[..., None], Callable[[int], None]]]:
    """A Rich progress bar whose total is learnt as work is found (a crawl): yields
    ``(tick(n=1), grow(n))``; the bar shows done/found so far and the time left for what
    is known."""
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn()]
    bar = Progress(*columns, console=console, transient=True)
    with bar:
        task = bar.add_task(label, total=total or 0)
        yield (lambda n=1: bar.advance(task, n),
               lambda n: bar.update(task, total=(bar.tasks[0].total or 0) + n))


def load_engine(console: Console, ws: Workspace) -> None:
    """Load the gallery's indices under a spinner that says so (seconds on a large
    gallery; features of new images are extracted then)."""
    with console.status("loading the gallery's indices", spinner="dots"):
        ws.engine()


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
    """A table of candidates with verdict, score, best match and its evidence.

    Fits the console (80 columns in a pipe): the verdict and score never wrap, the
    candidate's name or URL is shortened in the middle to at most :func:`name_width`, and
    the last column (the gallery image, then the stage and evidence) takes the rest."""
    info = ws.gallery_info()
    table = Table()
    table.add_column("candidate", max_width=name_width(out))
    table.add_column("verdict", no_wrap=True, min_width=VERDICT_WIDTH)
    table.add_column("score", no_wrap=True, justify="right")
    table.add_column("gallery image / evidence", overflow="fold")
    for r in results:
        if only_flagged and r.verdict in (Verdict.CLEAN,):
            continue
        best = r.outcomes[0].match if r.outcomes else None
        if r.error:
            detail: Any = Wrapped(r.error)
        elif best:
            gallery = Path(info.get(best.gallery_id, ("?",))[0]).name
            evidence = _evidence(best)
            detail = Group(Short(gallery, "bold"),
                           Text(f"{best.stage}: {evidence}" if evidence else best.stage))
        else:
            detail = ""
        source = r.source if r.source.startswith("http") else Path(r.source).name
        table.add_row(Short(source), Text(r.verdict.value, COLOURS[r.verdict.value]),
                      f"{best.score:.2f}" if best else "", detail)
    out.print(table)
    counts = {v.value: sum(r.verdict == v for r in results) for v in Verdict}
    out.print("  ".join(f"[{COLOURS[k]}]{k}[/] {n}" for k, n in counts.items() if n)
              or "nothing checked")


CHECK_CSV = ("path", "sha256", "verdict", "error", "matches", "gallery_id", "gallery_path",
             "collection", "rule", "stage", "score", "distance", "cosine", "similarity",
             "normalised", "inliers", "region", "query_overlap", "target_overlap",
             "target_region")
"""Columns of ``check --format csv``."""


def check_csv(info: dict[int, tuple[str, str, dict]]) -> Callable[[CheckResult], None]:
    """Write the CSV header of ``check --format csv``; returns ``write(result)``: one row
    per candidate, its JSON-lines fields with the best match's flattened (empty when
    none) and ``matches`` the number of flagged matches."""
    write = csv_writer(CHECK_CSV)

    def row(result: CheckResult) -> None:
        doc = result_json(result, info)
        best = doc["matches"][0] if doc["matches"] else {}
        write({**{k: v for k, v in best.items() if k != "verdict"}, **doc,
               "matches": len(doc["matches"])})
    return row


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
    table = Table()
    table.add_column("check", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=len("unavailable"))
    table.add_column("detail")
    path = config or config_path()
    if path.exists():
        table.add_row("config", "[green]ok[/]", Wrapped(str(path)))
    else:
        table.add_row("config", "[yellow]defaults[/]",
                      Wrapped(f"not found: defaults in use (`monitor init` writes one): {path}"))
    table.add_row("database", "[green]ok[/]", Wrapped(redacted(ws.settings.database_url)))
    queue_ok = _queue_row(table, ws.settings.queue.broker_url)
    table.add_row("rules", "[green]ok[/]", Wrapped(f"{len(rules)} rule(s): "
                  + ", ".join(f"{r.name} ({r.verdict})" for r in rules)))
    sizes = ws.gallery_sizes()
    table.add_row("gallery", "[green]ok[/]" if sizes else "[yellow]empty[/]",
                  Wrapped(", ".join(f"{n}: {k} image(s)" for n, k in sizes.items())
                          or "no protected image yet: monitor gallery add PATH"))
    engine = ws.engine()
    held = _held(engine)
    table.add_row("indices", "[green]ok[/]", Wrapped(", ".join(
        f"{k}: {v}" for k, v in held.items()) + f" ({ws.index_dir})"))
    for s in engine.statuses():
        state = ("[green]available[/]" if s.available else
                 "[dim]disabled[/]" if not s.enabled else "[yellow]unavailable[/]")
        table.add_row(f"stage {s.name}", state, Wrapped(
            " ".join(x for x in (s.reason, f"fix: {s.fix}" if s.fix else "") if x)))
    out.print(table)
    return queue_ok


def _queue_row(table: Table, url: str) -> bool:
    """The ``queue`` row of ``doctor``: embedded, or the broker and whether it answers
    (False when it does not)."""
    if not url:
        table.add_row("queue", "[green]ok[/]", Wrapped(
            "embedded: `monitor serve` checks in its own threads (queue.broker_url empty)"))
        return True
    from monitor.daemon.broker import probe

    error = probe(url)
    table.add_row("queue", "[green]ok[/]" if error is None else "[red]unreachable[/]",
                  Wrapped(f"broker {redacted(url)}" + (f": {error}" if error else "")))
    return error is None


def _held(engine) -> dict[str, str]:
    """What the engine's indices hold, for ``doctor``: images and index kind per signal."""
    def sized(index) -> str:
        return f"{len(index)} ({index.kind})" if index is not None else "0"

    store = engine.local_index.store
    held = {"pHash": sized(engine.hash_index)}
    if engine.descriptor:
        held["SSCD"] = sized(engine.descriptor_index)
        r = engine.settings.retrieval
        held["cascade"] = (f"verify at confidence >= {r.cascade_min_confidence:g} or SSCD "
                           f"normalised >= {r.normalised_floor(engine.gallery_size()):.3f}")
    if engine.clip:
        held["CLIP"] = sized(engine.clip_index)
    held["verification records"] = f"{len(store)} ({store.disk_bytes / 2**20:.1f} MB on disk)"
    if engine.local:
        vote = engine.local_index.vote
        held["keypoint vote"] = ("off" if vote is None
                                 else f"{vote.descriptor_count} descriptors")
    return held
