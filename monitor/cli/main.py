"""Command line: ``monitor`` (Typer). Thin: every command calls the service layer.

The shared context (``--config``, :func:`~monitor.cli.context.workspace`,
:func:`~monitor.cli.context.guarded`, consoles) is :mod:`monitor.cli.context`; the
``gallery``, ``violations``/``alerts``, ``serve``, ``sign``, ``background``,
``check``/``scan`` (:mod:`.check`), ``report`` (:mod:`.report`) and ``search``/``dupes``
(:mod:`.explore`) commands come from their modules' ``register(app, workspace, guarded)``,
called in the order ``monitor --help`` lists them. This module keeps ``init`` and
``doctor``, and re-exports the helpers that moved out of it (:func:`when`,
:func:`exit_status`, :class:`Format`, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

import monitor.cli.background as cli_background
import monitor.cli.check as cli_check
import monitor.cli.explore as cli_explore
import monitor.cli.gallery as cli_gallery
import monitor.cli.report as cli_report
import monitor.cli.serve as cli_serve
import monitor.cli.sign as cli_sign
import monitor.cli.view as view
import monitor.cli.violations as cli_violations
from monitor.cli.check import FORMAT_HELP, FailOn, Format, exit_status, stream, warn_empty
from monitor.cli.context import err, guarded, set_config, state, workspace
from monitor.cli.report import RELATIVE, ReportFormat, when
from monitor.config import default_toml
from monitor.services.health import redacted
from monitor.services.workspace import DEFAULT_RULES

__all__ = ["FORMAT_HELP", "RELATIVE", "FailOn", "Format", "ReportFormat", "app", "doctor",
           "exit_status", "init", "main", "run", "stream", "warn_empty", "when"]

app = typer.Typer(help="Watch for copies of a protected image gallery.", no_args_is_help=True,
                  rich_markup_mode=None,
                  pretty_exceptions_enable=False)


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


cli_check.register(app, workspace, guarded)
cli_report.register(app, workspace, guarded)
cli_explore.register(app, workspace, guarded)


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

