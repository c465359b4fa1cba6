"""``monitor violations list|show|set-status|takedown`` and ``monitor alerts send|digest``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

import monitor.cli.view as view
from monitor.errors import ConfigError
from monitor.services.violations import MAX_ID
from monitor.services.workspace import Workspace

out, err = Console(), Console(stderr=True)

ID_RANGE = {"min": 1, "max": MAX_ID}
"""Bounds of a violation id argument: beyond them Click answers a usage error (exit 2)."""


class ListFormat(StrEnum):
    """Output of ``violations list``."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def items_table(items: list) -> Table:
    """Violations and review items as a table that fits the console (80 columns in a
    pipe), two lines an item: the status over the verdict and the severity under the rule
    (neither ever wraps), where it was found (a path or URL shortened in the middle, its
    start and file name kept) over the protected image's file name, and the score and
    date."""
    table = Table()
    table.add_column("id", no_wrap=True, justify="right")
    table.add_column("status\nverdict", no_wrap=True, min_width=view.STATUS_WIDTH)
    table.add_column("found at\nprotected")
    table.add_column("rule\nseverity", max_width=14)
    table.add_column("score", no_wrap=True, justify="right")
    table.add_column("flagged", no_wrap=True)
    for i in items:
        table.add_row(str(i.violation_id),
                      Group(Text(i.status), Text(i.verdict, view.COLOURS.get(i.verdict, ""))),
                      Group(view.Short(i.source), view.Short(Path(i.protected_path).name,
                                                             "bold")),
                      Group(view.Short(i.rule), Text(i.severity, no_wrap=True)),
                      f"{i.score:.2f}", i.created_at.strftime("%Y-%m-%d\n%H:%M"))
    return table


def facts_grid(rows: list[tuple[str, str]]) -> Table:
    """``key  value`` lines; a value wraps at its spaces and between a path's folders
    (a file name, a hash and a URL's parts stay whole where they fit), never cut."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(no_wrap=True)
    facts.add_column()
    for key, value in rows:
        facts.add_row(Text(key, "dim"), view.Wrapped(value))
    return facts


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


MAIL_OFF = ("e-mail is off: smtp.host is not set. Add to config.toml\n  [smtp]\n"
            '  host = "smtp.example.org"\n  recipients = ["you@example.org"]\n'
            "(password from MONITOR_SMTP__PASSWORD or smtp.password_file); violations found "
            "meanwhile stay queued and are sent then")


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``violations`` and ``alerts`` command groups to ``app``."""
    vio = typer.Typer(help="Review recorded violations.", no_args_is_help=True)
    alerts = typer.Typer(help="Send e-mail alerts and digests.", no_args_is_help=True)
    app.add_typer(vio, name="violations")
    app.add_typer(alerts, name="alerts")

    @vio.command("list")
    @guarded
    def list_(
        status: Annotated[list[str] | None, typer.Option(
            help="open, confirmed, dismissed, licensed (repeatable).")] = None,
        collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
        severity: Annotated[list[str] | None, typer.Option(help="Only these severities.")] = None,
        format: Annotated[ListFormat, typer.Option(
            "--format", help="table (fits the terminal, 80 columns in a pipe), jsonl (one "
            "JSON object an item) or csv (a header row, then the report's CSV columns).")]
        = ListFormat.table,
    ) -> None:
        """List violations and review items, newest first."""
        from monitor.outcome.exports import item_row
        from monitor.services.violations import list_items

        ws = workspace()
        items = list_items(ws, collection=collection, status=status, severity=severity,
                           order="newest")
        if format == ListFormat.jsonl:
            for i in items:
                print(json.dumps(item_row(ws, i), ensure_ascii=False), flush=True)
            return
        if format == ListFormat.csv:
            from monitor.outcome.exports import COLUMNS, guarded

            write = view.csv_writer(COLUMNS)
            for i in items:
                write(guarded(item_row(ws, i)))
            return
        out.print(items_table(items))
        err.print(f"{len(items)} item(s)")

    @vio.command("show")
    @guarded
    def show(violation_id: Annotated[int, typer.Argument(help="Violation id.", **ID_RANGE)]
             ) -> None:
        """Show one violation: evidence, where it was found, alerts and the audit trail."""
        from monitor.outcome.stored import location
        from monitor.outcome.templating import when
        from monitor.services.violations import alerts_of, get_item, history

        ws = workspace()
        item = get_item(ws, violation_id)
        sent = alerts_of(ws, violation_id)
        out.print(facts_grid([
            ("violation", f"#{item.violation_id} {item.verdict} ({item.severity}), rule "
             f"{item.rule}, status {item.status}"),
            ("protected", item.protected_path), ("collection", item.collection),
            ("sha256", item.protected_sha256),
            ("found at", item.source), ("page", item.page_url or "—"),
            ("found sha256", item.candidate_sha256 or "—"),
            ("evidence file", location(ws, item.evidence_path)
             if item.evidence_path else "not archived"),
            ("http", f"{item.http_status or '—'} "
             + (json.dumps(item.headers) if item.headers else "")),
            ("first seen", when(item.first_seen)), ("last seen", when(item.last_seen)),
            ("score", f"{item.score:.2f} ({item.stage}); " + "; ".join(item.evidence)),
            ("note", item.note or "—"),
        ]))
        trail = Table(title="audit trail")
        trail.add_column("when", max_width=None if out.width >= 100 else len("00:00:00 UTC"))
        trail.add_column("actor", max_width=20)
        trail.add_column("from", no_wrap=True, min_width=view.STATUS_WIDTH)
        trail.add_column("to", no_wrap=True, min_width=view.STATUS_WIDTH)
        trail.add_column("note")
        for e in history(ws, violation_id):
            trail.add_row(when(e.at), view.Short(e.actor), e.from_status, e.to_status,
                          view.Wrapped(e.note))
        out.print(trail)
        for a in sent:
            out.print(f"alert {a.kind}: {a.status}, {a.attempts} attempt(s)"
                      + (f", error: {a.error}" if a.error else ""))

    @vio.command("set-status")
    @guarded
    def set_status_(
        violation_id: Annotated[int, typer.Argument(help="Violation id.", **ID_RANGE)],
        status: Annotated[str, typer.Argument(help="open, confirmed, dismissed or licensed.")],
        note: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
        actor: Annotated[str | None, typer.Option(help="Who (default: cli:<user>).")] = None,
        allow_domain: Annotated[bool, typer.Option(
            "--allow-domain", help="With 'licensed': allow-list the found image's host.")] = False,
    ) -> None:
        """Change a violation's review status, recording who, when and why."""
        from monitor.services.review import set_status

        v = set_status(workspace(), violation_id, status, actor or _actor(), note,
                       allow_domain=allow_domain)
        typer.echo(f"violation {v.id}: {v.status}")

    @vio.command("takedown")
    @guarded
    def takedown(
        violation_id: Annotated[int, typer.Argument(help="Violation id.", **ID_RANGE)],
        out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file.")]
        = None,
    ) -> None:
        """Draft a DMCA-style takedown notice for a violation (edit before sending)."""
        from monitor.outcome.takedown import render_takedown, write_takedown

        ws = workspace()
        if out_file is None:
            typer.echo(render_takedown(ws, violation_id), nl=False)
        else:
            err.print(f"wrote {write_takedown(ws, violation_id, out_file)}")

    @alerts.command("send")
    @guarded
    def send() -> None:
        """Send pending immediate alerts that are due; failures are retried later."""
        from monitor.outcome.notify import send_pending_alerts
        from monitor.services.violations import pending_alerts

        ws = workspace()
        if not ws.settings.smtp.host:
            raise ConfigError(MAIL_OFF)
        n = send_pending_alerts(ws)
        waiting = pending_alerts(ws, "immediate")
        typer.echo(f"sent {n} alert(s); {len(waiting)} pending")
        for a in waiting:
            if a.error:
                err.print(f"alert {a.id} (violation {a.violation_id}): attempt {a.attempts} "
                          f"failed: {a.error}; next at {a.next_attempt_at}")

    @alerts.command("digest")
    @guarded
    def digest(now: Annotated[datetime | None, typer.Option(
            help="End of the period (UTC; default now).")] = None) -> None:
        """Mail the digest of violations flagged since the last digest (default 24 h)."""
        from monitor.outcome.notify import send_digest

        ws = workspace()
        if not ws.settings.smtp.host:
            raise ConfigError(MAIL_OFF)
        alert = send_digest(ws, now)
        if alert is None:
            typer.echo("nothing new; no digest sent")
        elif alert.status == "sent":
            typer.echo(f"digest sent to {alert.recipients} "
                       f"({alert.period_start} to {alert.period_end})")
        else:
            err.print(f"digest failed: {alert.error}")
            raise typer.Exit(1)
