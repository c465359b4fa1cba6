"""``monitor gallery add|list|remove|purge``.

``remove`` deletes an image without violations; one with violations is archived (out of
matching and ``list``, its violations and evidence kept, ``archived_by`` the OS user).
``list --archived`` shows archived images too; ``purge ID… --yes`` deletes archived
images with their violations, audit trail, alerts and evidence files.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

import monitor.cli.view as view
from monitor.cli.context import err, out
from monitor.errors import InvalidRequest, MonitorError
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


def os_user() -> str:
    """Who runs this command: the OS user name (``cli`` when it cannot be told)."""
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


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
    def list_(collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
              archived: Annotated[bool, typer.Option(
                  "--archived", help="Also list archived images (removed, with violations).")]
              = False) -> None:
        """List protected images."""
        from monitor.services.gallery import list_gallery

        table = Table("id", "collection", "sha256", "size", "path",
                      *(("archived",) if archived else ()))
        for row, coll in list_gallery(workspace(), collection, archived=archived):
            when = (f"{row.archived_at:%Y-%m-%d %H:%M} by {row.archived_by}"
                    if row.archived_at else "—")
            table.add_row(str(row.id), coll, row.sha256[:12], f"{row.width}x{row.height}",
                          row.path, *((when,) if archived else ()))
        out.print(table)

    @gallery.command("remove")
    @guarded
    def remove(refs: Annotated[list[str], typer.Argument(help="Ids or sha256 prefixes.")]
               ) -> None:
        """Remove protected images from the gallery: deleted with their matches, or
        archived (violations and evidence kept) when they have violations."""
        from monitor.services.gallery import remove as do_remove

        done = do_remove(workspace(), refs, os_user())
        if done.deleted:
            err.print(f"removed {len(done.deleted)} image(s): "
                      f"{', '.join(map(str, done.deleted))}")
        if done.archived:
            err.print(f"archived {len(done.archived)} image(s) with violations: "
                      f"{', '.join(map(str, done.archived))} (no longer matched; violations "
                      "and evidence kept; `monitor gallery purge ID --yes` deletes them)")

    @gallery.command("purge")
    @guarded
    def purge(refs: Annotated[list[str], typer.Argument(help="Ids or sha256 prefixes.")],
              yes: Annotated[bool, typer.Option(
                  "--yes", help="Confirm: this deletes evidence and cannot be undone.")]
              = False) -> None:
        """Delete archived images for good, with their matches, violations, audit trail,
        alerts and evidence files."""
        from monitor.services.gallery import purge as do_purge

        if not yes:
            raise InvalidRequest("purge deletes violations and their evidence for good: "
                                 "add --yes to confirm")
        done = do_purge(workspace(), refs)
        err.print(f"purged {len(done.images)} image(s): {', '.join(map(str, done.images))}; "
                  f"{done.violations} violation(s), {len(done.evidence)} evidence file(s) "
                  "deleted")

    app.add_typer(gallery, name="gallery")
