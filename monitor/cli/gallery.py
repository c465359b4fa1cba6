"""``monitor gallery add|list|remove|purge|reindex``.

``remove`` deletes an image without violations; one with violations is archived (out of
matching and ``list``, its violations and evidence kept, ``archived_by`` the OS user).
``list --archived`` shows archived images too; ``purge ID… --yes`` deletes archived
images with their violations, audit trail, alerts and evidence files.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

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


class ListFormat(StrEnum):
    """Output of ``gallery list``."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"


LIST_COLUMNS = ("id", "collection", "sha256", "width", "height", "size_bytes", "format", "path",
                "added_at", "archived_at", "archived_by", "meta")
"""Fields of ``gallery list --format jsonl|csv`` (times ISO 8601, UTC)."""


def image_row(row: Any, collection: str) -> dict[str, Any]:
    """One protected image (a gallery row and its collection's name) keyed by
    :data:`LIST_COLUMNS`."""
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None
    return {"id": row.id, "collection": collection, "sha256": row.sha256, "width": row.width,
            "height": row.height, "size_bytes": row.size_bytes, "format": row.format,
            "path": row.path, "added_at": iso(row.added_at),
            "archived_at": iso(row.archived_at), "archived_by": row.archived_by,
            "meta": json.loads(row.meta_json or "{}")}


def gallery_table(rows: list[dict[str, Any]]) -> Table:
    """Images as a table that fits the console: id, collection, size and the sha256 (its
    first 12 hex digits) never wrap; the path, shortened in the middle (its start and file
    name kept), takes the rest; an archived image says when and by whom under its path."""
    table = Table()
    table.add_column("id", no_wrap=True, justify="right")
    table.add_column("collection", max_width=16)
    table.add_column("sha256", no_wrap=True, min_width=12)
    table.add_column("size", no_wrap=True)
    table.add_column("path")
    for r in rows:
        path: Any = view.Short(r["path"])
        if r["archived_at"]:
            when = f"{r['archived_at'][:16].replace('T', ' ')}"
            path = Group(path, Text(f"archived {when}", "dim"), Text(f"by {r['archived_by']}",
                                                                       "dim"))
        table.add_row(str(r["id"]), view.Short(r["collection"]), r["sha256"][:12],
                      f"{r['width']}x{r['height']}", path)
    return table


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``gallery`` group to ``app``; its commands open ``workspace()`` and are
    wrapped in ``guarded`` (see :mod:`monitor.cli.context`)."""

    @gallery.command("add")
    @guarded
    def add(
        paths: Annotated[list[str], typer.Argument(
            metavar="PATH", help="Image files or folders (recursive).")],
        collection: Annotated[str, typer.Option(help="Collection name.")] = "default",
        meta: Annotated[list[str] | None, typer.Option(
            help="key=value metadata (title, owner, sku, licence URL); repeatable.")] = None,
    ) -> None:
        """Register images as protected (idempotent by sha256)."""
        from monitor.intake.inputs import expand
        from monitor.services.gallery import add_paths

        ws = workspace()
        view.load_engine(err, ws)
        view.warn_unavailable(err, ws)
        located = [i.location for i in expand(paths)]  # folders walked once, for the total
        with view.progress(err, "adding", enabled=True, total=len(located)) as tick:
            results = add_paths(ws, located, collection, _parse_meta(meta or []),
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
              = False,
              format: Annotated[ListFormat, typer.Option(
                  "--format", help="table (fits the terminal, 80 columns in a pipe), jsonl "
                  "(one JSON object an image) or csv (a header row, one row an image).")]
              = ListFormat.table) -> None:
        """List protected images."""
        from monitor.services.gallery import list_gallery

        rows = [image_row(row, coll) for row, coll in
                list_gallery(workspace(), collection, archived=archived)]
        if format == ListFormat.jsonl:
            view.print_jsonl_rows(rows)
        elif format == ListFormat.csv:
            write = view.csv_writer(LIST_COLUMNS)
            for row in rows:
                write(row)
        else:
            out.print(gallery_table(rows))

    @gallery.command("remove")
    @guarded
    def remove(refs: Annotated[list[str], typer.Argument(
        metavar="ID_OR_SHA256", help="Ids or sha256 prefixes.")]
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
    def purge(refs: Annotated[list[str], typer.Argument(
        metavar="ID_OR_SHA256", help="Ids or sha256 prefixes.")],
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

    @gallery.command("reindex")
    @guarded
    def reindex() -> None:
        """Rebuild the retrieval indices (pHash, SSCD, CLIP) from the stored signals, each
        trained for the gallery's present size. Worth it after the gallery has grown
        tenfold; interrupted, it leaves the old indices in place."""
        from monitor.services.gallery import reindex as do_reindex

        ws = workspace()
        view.load_engine(err, ws)
        total = sum(ws.gallery_sizes().values())
        with view.progress(err, "reindexing", enabled=True, total=total) as tick:
            built = do_reindex(ws, progress=lambda n: tick(n))
        for b in built:
            err.print(f"{b.name}: {b.images} image(s), {b.kind}, {b.seconds:.1f} s")

    @gallery.command("snapshot")
    @guarded
    def snapshot() -> None:
        """Publish the index folder to the blob store (storage.blob_url), so a worker that
        starts on a new machine downloads it and applies only the changes since, instead
        of building every index from the gallery. Nothing to do when the blob store is
        the data folder itself (the index folder is shared then)."""
        from monitor.services.snapshots import publish

        ws = workspace()
        view.load_engine(err, ws)
        snap = publish(ws)
        if snap is None:
            err.print("nothing published: the blob store is the data folder (the index "
                      "folder is already shared) or no index is saved yet")
            return
        err.print(f"published {snap.prefix}: {len(snap.files)} file(s), "
                  f"{snap.bytes / 2**20:.1f} MB, gallery version {snap.version}, "
                  f"{snap.seconds:.1f} s")

    app.add_typer(gallery, name="gallery")
