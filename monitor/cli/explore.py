"""``monitor search`` and ``monitor dupes``: explore the gallery (see
:mod:`monitor.services.explore`).

Registered on the app by :mod:`monitor.cli.main` through ``register(app, workspace,
guarded)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from monitor.cli.context import err
from monitor.services.workspace import Workspace


def register(app: typer.Typer, workspace: Callable[[], Workspace], guarded: Callable) -> None:
    """Attach the ``search`` and ``dupes`` commands to ``app``."""

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
