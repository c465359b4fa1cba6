"""What every CLI command shares: the ``--config`` option's value, the workspace, the
consoles and :func:`guarded`, which turns a :class:`~monitor.errors.MonitorError` into
a one-line message and the error's exit code.

Command modules import these from here (never from :mod:`monitor.cli.main`, which
imports them); modules that take them through ``register(app, workspace, guarded)``
get the same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from monitor.config import config_path, load_settings
from monitor.errors import MonitorError
from monitor.services.workspace import Workspace

P = ParamSpec("P")
R = TypeVar("R")

out = Console()
"""Standard output: tables and results."""

err = Console(stderr=True)
"""Standard error: progress, notes, summaries and error lines."""

state: dict[str, Path | None] = {"config": None}
"""This invocation's options: ``config`` is ``--config`` (None: ``$MONITOR_CONFIG`` or
``./config.toml``), set by the app's callback."""


def set_config(path: Path | None) -> None:
    """Record the ``--config`` option (None: the default) for :func:`workspace`."""
    state["config"] = path


def config_file() -> Path:
    """The config file this invocation uses, absolute (it need not exist)."""
    path = state["config"] or config_path()
    return path.expanduser().absolute()


def workspace() -> Workspace:
    """The workspace for this invocation (config from --config or MONITOR_CONFIG).

    Raises:
        ConfigError: the config file or environment is invalid.
        StoreError: the database cannot be opened.
    """
    return Workspace(load_settings(state["config"]))


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so a :class:`MonitorError` prints ``error (code): message`` on
    stderr and exits with the error's ``exit_code`` (2: fix the command or config,
    1: a service failed; see :mod:`monitor.errors`)."""
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MonitorError as exc:
            err.print(f"[bold red]error[/] ({exc.code}): {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
    return wrapper
