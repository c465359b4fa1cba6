"""``monitor report``: recorded violations as an HTML, JSON or CSV report.

:func:`when` reads the ``--since``/``--until`` points in time. Registered on the app by
:mod:`monitor.cli.main` through ``register(app, workspace, guarded)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from monitor.services.workspace import Workspace


class ReportFormat(StrEnum):
    """Report output formats."""

    html = "html"
    json = "json"
    csv = "csv"


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


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``report`` command to ``app``."""

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
