"""``monitor background build DIR``: a score-normalisation background set for SSCD.

See :mod:`monitor.services.background`; the file it writes is what
``descriptor.background`` names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

import monitor.cli.view as view
from monitor.cli.context import err
from monitor.services.workspace import Workspace

background = typer.Typer(help="Score normalisation of the descriptor stage.",
                         no_args_is_help=True)


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``background`` group to ``app``."""

    @background.command("build")
    @guarded
    def build(
        folder: Annotated[Path, typer.Argument(
            help="Folder of unrelated images (none a copy of a protected image).")],
        out: Annotated[Path, typer.Option(help="File to write (.npy).")] = Path(
            "data/background.npy"),
        limit: Annotated[int | None, typer.Option(
            help="Embed at most this many images (in path order).")] = None,
    ) -> None:
        """Embed unrelated images as the background that SSCD similarities are normalised
        against; then set descriptor.background to the file in config.toml."""
        from monitor.services.background import build as do_build

        ws = workspace()
        with view.progress(err, "embedding", enabled=True) as tick:
            done = do_build(ws, folder.expanduser(), out.expanduser(), limit,
                            progress=tick)
        err.print(f"{done.embedded} images embedded, {done.skipped} skipped, written to "
                  f"{done.path}; set descriptor.background = \"{done.path}\" in config.toml")

    app.add_typer(background, name="background")
