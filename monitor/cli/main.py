"""Command line: ``monitor`` (Typer). Thin: every command calls the service layer.

The shared context (``--config``, :func:`~monitor.cli.context.workspace`,
:func:`~monitor.cli.context.guarded`, consoles) is :mod:`monitor.cli.context`; the
``gallery``, ``violations``/``alerts`` and ``serve`` commands come from their modules'
``register(app, workspace, guarded)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

import monitor.cli.background as cli_background
import monitor.cli.gallery as cli_gallery
import monitor.cli.serve as cli_serve
import monitor.cli.sign as cli_sign
import monitor.cli.view as view
import monitor.cli.violations as cli_violations
from monitor.cli.context import err, guarded, set_config, state, workspace
from monitor.config import default_toml
from monitor.errors import EXIT_FOUND, EXIT_INPUT, NotFound
from monitor.services.health import redacted
from monitor.services.workspace import DEFAULT_RULES
from monitor.types import CheckResult

app = typer.Typer(help="Watch for copies of a protected image gallery.", no_args_is_help=True,
                  rich_markup_mode=None,
                  pretty_exceptions_enable=False)


class Format(StrEnum):
    """Output formats of commands that produce results."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"


FORMAT_HELP = ("table (fits the terminal, 80 columns in a pipe), jsonl (one JSON object a "
               "candidate) or csv (a header row, one row a candidate with its best match).")


def stream(format: Format, info: dict) -> Callable[[CheckResult], None]:
    """What prints one result as it comes for ``format``: a JSON line, a CSV row (the
    header written now) or nothing (the table is printed at the end)."""
    if format == Format.jsonl:
        return lambda r: view.print_jsonl(info, r)
    if format == Format.csv:
        return view.check_csv(info)
    return lambda r: None


class FailOn(StrEnum):
    """Outcomes that make ``check`` and ``scan`` fail: a verdict (exit 1) or ``error``, a
    candidate that could not be checked (exit 3)."""

    violation = "violation"
    review = "review"
    error = "error"


def exit_status(results: list, fail_on: list[FailOn] | None) -> int:
    """The exit status of a ``check``/``scan`` run.

    Without ``--fail-on``: :data:`~monitor.errors.EXIT_INPUT` when a candidate could not
    be checked, else 0. With it, only what it names fails the run: ``error`` gives
    :data:`~monitor.errors.EXIT_INPUT` (it outranks a verdict), ``violation``/``review``
    :data:`~monitor.errors.EXIT_FOUND`; so ``--fail-on violation`` alone lets a cron job
    alert on copies without failing on a host that was down."""
    wanted = {f.value for f in fail_on} if fail_on else {"error"}
    if "error" in wanted and any(r.verdict.value == "error" for r in results):
        return EXIT_INPUT
    return EXIT_FOUND if any(r.verdict.value in wanted - {"error"} for r in results) else 0


RELATIVE = {"h": 1, "d": 24, "w": 24 * 7}
"""Hours per unit of a relative time (``12h``, ``7d``, ``2w``)."""


def when(text: str | None, option: str) -> datetime | None:
    """A point in time (UTC, naive) from an ISO date or date-time, ``N`` h/d/w ago,
    ``today`` (midnight) or ``yesterday`` (midnight before).

    Raises:
        typer.BadParameter: none of those forms (the message lists them).
    """
    if text is None:
        return None
    value = text.strip().lower()
    now = datetime.now(UTC).replace(tzinfo=None)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value in ("today", "yesterday"):
        return midnight - timedelta(days=value == "yesterday")
    if value[:-1].isdigit() and value[-1:] in RELATIVE:
        return now - timedelta(hours=int(value[:-1]) * RELATIVE[value[-1]])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use a date (2026-11-01), a date-time "
                                 "(2026-11-01T08:00), 12h, 7d, 2w, today or yesterday",
                                 param_hint=option) from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def warn_empty(ws, collection: str | None) -> None:
    """Say so when nothing is protected (in ``collection``): every candidate would come
    back clean, which must not pass for a clean result."""
    sizes = ws.gallery_sizes()
    if (sizes.get(collection, 0) if collection else sum(sizes.values())):
        return
    where = f"collection {collection!r} holds" if collection else "the gallery holds"
    err.print(f"[yellow]warning[/] {where} no protected image: every candidate will be "
              "clean. Add images first: monitor gallery add PATH")


@app.callback()
def main(config: Annotated[Path | None, typer.Option(
        help="config.toml to use (default: $MONITOR_CONFIG or ./config.toml).")] = None) -> None:
    """monitor: perceptual hash, CLIP and local-feature copy detection."""
    set_config(config)


cli_gallery.register(app, workspace, guarded)
cli_violations.register(app, workspace, guarded)
cli_serve.register(app, workspace, guarded)
cli_sign.register(app, workspace, guarded)
cli_background.register(app, workspace, guarded)


@app.command()
@guarded
def init(force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False) -> None:
    """Write a commented config.toml and rules/default.toml here, and create the database."""
    for path, text in ((Path("config.toml"), default_toml()),
                       (Path("rules/default.toml"), DEFAULT_RULES.read_text())):
        if path.exists() and not force:
            err.print(f"kept existing {path}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        err.print(f"wrote {path}")
    ws = workspace()
    err.print(f"database ready: {redacted(ws.settings.database_url)}")


@app.command()
@guarded
def check(
    inputs: Annotated[list[str], typer.Argument(
        metavar="PATH_OR_URL", help="Files, folders (recursive) or URLs.")],
    collection: Annotated[str | None, typer.Option(
        metavar="NAME", help="Only match this collection.")] = None,
    format: Annotated[Format, typer.Option("--format", help=FORMAT_HELP)] = Format.table,
    fail_on: Annotated[list[FailOn] | None, typer.Option(
        "--fail-on", metavar="violation|review|error",
        help="What fails the run (repeatable): violation or review exit 1, error (a "
             "candidate that could not be checked) exits 3. Default: error only.")] = None,
) -> None:
    """Check candidate images against the gallery and record the results.

    Exit status: 0 nothing named by --fail-on happened; 1 a verdict named by --fail-on;
    2 usage or configuration error; 3 a candidate could not be checked (missing, empty,
    not an image, fetch failed), unless --fail-on is given without error; 4 a service
    failed.
    """
    from monitor.intake.inputs import expand
    from monitor.services.check import check as run_check

    ws = workspace()
    view.load_engine(err, ws)
    view.warn_unavailable(err, ws)
    warn_empty(ws, collection)
    info = ws.gallery_info()
    located = [i.location for i in expand(inputs)]  # a folder walked once, for the total
    with view.progress(err, "checking", enabled=format == Format.table,
                       total=len(located)) as tick:
        results = []
        emit = stream(format, info)
        for r in run_check(ws, located, collection, step=tick):
            emit(r)
            results.append(r)
    if format == Format.table:
        view.results_table(ws, results)
    raise typer.Exit(exit_status(results, fail_on))


@app.command()
@guarded
def scan(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE",
        help="A source name from [[sources]] in config.toml, or a folder.")],
    collection: Annotated[str | None, typer.Option(
        metavar="NAME", help="Only match this collection.")] = None,
    report: Annotated[bool, typer.Option(help="Write an HTML report of the scan.")] = True,
    format: Annotated[Format, typer.Option("--format", help=FORMAT_HELP)] = Format.table,
    fail_on: Annotated[list[FailOn] | None, typer.Option(
        "--fail-on", metavar="violation|review|error",
        help="What fails the run (repeatable): violation or review exit 1, error (a "
             "candidate that could not be checked) exits 3. Default: error only.")] = None,
) -> None:
    """Run a configured source (or check a folder) now as one scan; summary and report.

    Exit status as for `monitor check`: 0, 1 (--fail-on), 2 (usage or configuration),
    3 (a candidate could not be checked), 4 (a service failed).
    """
    ws = workspace()
    view.warn_unavailable(err, ws)
    warn_empty(ws, collection)
    configured = ws.settings.source(source)
    total = None
    if configured is None and Path(source).is_dir():
        from monitor.intake.inputs import expand

        total = sum(1 for _ in expand([source]))  # a folder walked once, for the total
    with view.growing_progress(err, f"scanning {source}", total) as (tick, grow):
        if configured is not None:
            from monitor.services.sources import run_source

            sc, results = run_source(ws, configured, progress=lambda _: tick(),
                                     collection=collection, discovered=grow)
        elif Path(source).is_dir():
            from monitor.services.scans import run_scan

            sc, results = run_scan(ws, source, collection=collection, progress=lambda _: tick())
        else:
            names = ", ".join(s.name for s in ws.settings.sources) or "none configured"
            raise NotFound(f"{source!r} is neither a configured source ({names}) nor a folder")
    if format != Format.table:
        emit = stream(format, ws.gallery_info())
        for r in results:
            emit(r)
    else:
        view.results_table(ws, results, only_flagged=True)
        view.scan_summary(err, sc, results)
    if report:
        from monitor.outcome.report import write_report

        # one line however long (a pipe or a narrow terminal must not cut the path)
        err.print(f"report: {write_report(ws, scan_id=sc.id)}", soft_wrap=True, markup=False,
                  highlight=False)
    raise typer.Exit(exit_status(results, fail_on))


class ReportFormat(StrEnum):
    """Report output formats."""

    html = "html"
    json = "json"
    csv = "csv"


@app.command()
@guarded
def report(
    scan_id: Annotated[int | None, typer.Option("--scan", help="Only this scan.", min=1,
                                                max=2**63 - 1)] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Violation status filter.")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="Severity filter.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Flagged at/after: 2026-11-01, 2026-11-01T08:00, 7d, 12h, 2w, today or "
        "yesterday (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Flagged before; same forms.")] = None,
    format: Annotated[ReportFormat, typer.Option("--format", help="html, json or csv.")
                      ] = ReportFormat.html,
    out: Annotated[Path | None, typer.Option(help="Output file.")] = None,
) -> None:
    """Render recorded violations into a self-contained HTML report (or JSON / CSV)."""
    from monitor.outcome.report import write_report

    path = write_report(workspace(), scan_id=scan_id, collection=collection, status=status,
                        severity=severity, since=when(since, "--since"),
                        until=when(until, "--until"), format=format.value, out=out)
    typer.echo(str(path))


@app.command()
@guarded
def search(
    text: Annotated[str, typer.Option("--text", help="What to look for, in words.")],
    k: Annotated[int, typer.Option(help="How many results.")] = 10,
) -> None:
    """Rank gallery images by CLIP similarity to a text."""
    from monitor.services.explore import search_text

    ws = workspace()
    info = ws.gallery_info()
    for gid, cos in search_text(ws, text, k):
        path, coll, _ = info.get(gid, ("?", "?", {}))
        typer.echo(f"{cos:.4f}\t{gid}\t{coll}\t{path}")


@app.command()
@guarded
def dupes(
    collection: Annotated[str, typer.Argument(metavar="COLLECTION",
                                                      help="Collection to look inside.")],
    max_distance: Annotated[int, typer.Option(help="pHash radius, bits of 64.", min=0,
                                              max=64)] = 6,
    min_similarity: Annotated[float, typer.Option(
        help="SSCD cosine similarity that also links two images (same artwork resized, "
        "cropped or recoloured).", min=-1.0, max=1.0)] = 0.85,
) -> None:
    """List groups of near-duplicate images inside a collection, with the pHash distance
    and SSCD similarity of each link."""
    from monitor.services.explore import dupes as find_dupes

    ws = workspace()
    info = ws.gallery_info()
    groups = find_dupes(ws, collection, max_distance, min_similarity)
    for n, group in enumerate(groups, 1):
        typer.echo(f"group {n}: " + "  ".join(f"{g}:{info[g][0]}" for g in group.ids))
        for lk in group.links:
            sim = "" if lk.similarity is None else f", SSCD similarity {lk.similarity:.2f}"
            typer.echo(f"  {lk.a} ~ {lk.b}: pHash {lk.distance} bits{sim}")
    err.print(f"{len(groups)} near-duplicate group(s) in {collection}")


@app.command()
def doctor() -> None:
    """Say which stages are available and why not; check config, rules and database."""
    ok = view.doctor(err, state["config"])
    raise typer.Exit(0 if ok else 1)


def run() -> None:  # pragma: no cover - console entry point helper
    """Entry point that also works as ``python -m monitor``."""
    app(prog_name="monitor")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())

