"""``monitor gallery add|list|remove``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

import monitor.cli.view as view
from monitor.cli.context import err, out
from monitor.errors import MonitorError
from monitor.services.workspace import Workspace

gallery = typer.Typer(help="Manage the protected gallery.", no_args_is_help=True)


def _parse_meta(items: list[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--meta")
        meta[key.strip()] = value.strip()
    return meta


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``gallery`` group to ``app``; its commands open ``workspace()`` and are
    wrapped in ``guarded`` (see :mod:`monitor.cli.context`)."""

    @gallery.command("add")
    @guarded
    def add(
        paths: Annotated[list[str], typer.Argument(help="Image files or folders (recursive).")],
        collection: Annotated[str, typer.Option(help="Collection name.")] = "default",
        meta: Annotated[list[str] | None, typer.Option(
            help="key=value metadata (title, owner, sku, licence URL); repeatable.")] = None,
    ) -> None:
        """Register images as protected (idempotent by sha256)."""
        from monitor.services.gallery import add_paths

        ws = workspace()
        view.warn_unavailable(err, ws)
        with view.progress(err, "adding", enabled=True) as tick:
            results = add_paths(ws, paths, collection, _parse_meta(meta or []),
                                progress=lambda _: tick())
        counts = {s: sum(r.status == s for r in results) for s in ("added", "exists", "error")}
        for r in results:
            if r.status == "error":
                err.print(f"[yellow]skipped[/] {r.path}: {r.error}")
            elif r.warning:
                err.print(f"[yellow]note[/] {r.path}: {r.warning}")
        err.print(f"{counts['added']} added, {counts['exists']} already present, "
                  f"{counts['error']} refused, collection {collection!r}")
        if results and counts["error"] == len(results):
            raise MonitorError("no image could be added")

    @gallery.command("list")
    @guarded
    def list_(collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None
              ) -> None:
        """List protected images."""
        from monitor.services.gallery import list_gallery

        table = Table("id", "collection", "sha256", "size", "path")
        for row, coll in list_gallery(workspace(), collection):
            table.add_row(str(row.id), coll, row.sha256[:12], f"{row.width}x{row.height}",
                          row.path)
        out.print(table)

    @gallery.command("remove")
    @guarded
    def remove(refs: Annotated[list[str], typer.Argument(help="Ids or sha256 prefixes.")]
               ) -> None:
        """Remove protected images (and their matches) from the gallery."""
        from monitor.services.gallery import remove as do_remove

        ids = do_remove(workspace(), refs)
        err.print(f"removed {len(ids)} image(s): {', '.join(map(str, ids))}")

    app.add_typer(gallery, name="gallery")
