"""``monitor check`` and ``monitor scan``: check candidates now and record the results.

Both print results as they come (``--format`` jsonl or csv) or as a table at the end,
and share the exit status of :func:`exit_status` (``--fail-on``). Registered on the app
by :mod:`monitor.cli.main` through ``register(app, workspace, guarded)``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

import monitor.cli.view as view
from monitor.cli.context import err
from monitor.errors import EXIT_FOUND, EXIT_INPUT, NotFound
from monitor.services.workspace import Workspace
from monitor.types import CheckResult


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


CollectionOption = Annotated[str | None, typer.Option(
    metavar="NAME", help="Only match this collection.")]
FormatOption = Annotated[Format, typer.Option("--format", help=FORMAT_HELP)]
FailOnOption = Annotated[list[FailOn] | None, typer.Option(
    "--fail-on", metavar="violation|review|error",
    help="What fails the run (repeatable): violation or review exit 1, error (a "
         "candidate that could not be checked) exits 3. Default: error only.")]
"""The options ``check`` and ``scan`` share (Typer reads them from the annotations)."""


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


def warn_empty(ws: Workspace, collection: str | None) -> None:
    """Say so when nothing is protected (in ``collection``): every candidate would come
    back clean, which must not pass for a clean result."""
    sizes = ws.gallery_sizes()
    if (sizes.get(collection, 0) if collection else sum(sizes.values())):
        return
    where = f"collection {collection!r} holds" if collection else "the gallery holds"
    err.print(f"[yellow]warning[/] {where} no protected image: every candidate will be "
              "clean. Add images first: monitor gallery add PATH")


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``check`` and ``scan`` commands to ``app``."""

    @app.command()
    @guarded
    def check(
        inputs: Annotated[list[str], typer.Argument(
            metavar="PATH_OR_URL", help="Files, folders (recursive) or URLs.")],
        collection: CollectionOption = None,
        format: FormatOption = Format.table,
        fail_on: FailOnOption = None,
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
        collection: CollectionOption = None,
        report: Annotated[bool, typer.Option(help="Write an HTML report of the scan.")] = True,
        format: FormatOption = Format.table,
        fail_on: FailOnOption = None,
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
