"""Build a score-normalisation background set for the descriptor stage from a folder.

``monitor background build DIR --out FILE`` embeds every image under ``DIR`` (unrelated
images: none may be a copy of a protected one) with the configured SSCD model and
writes them as ``(M, 512) float16`` (:func:`monitor.matching.background.save`); point
``descriptor.background`` at the file. A few thousand images of the kind the deployment
sees (photos for a photographer, drawings for an illustrator) make normalisation
meaningful (Pizzi et al. 2022 used DISC21's 1M training images; the shipped set holds
a few thousand, :mod:`monitor.matching.background`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.errors import InvalidRequest, MonitorError, StageUnavailable
from monitor.imaging.decode import decode_file
from monitor.intake.inputs import walk
from monitor.matching import background
from monitor.matching.stages.descriptor import DescriptorStage
from monitor.services.workspace import Workspace

BATCH = 32
"""Images decoded and embedded per model call."""


@dataclass(frozen=True)
class BackgroundBuild:
    """What a build did: images embedded, files skipped (undecodable), where it wrote."""

    embedded: int
    skipped: int
    path: Path


def build(ws: Workspace, folder: Path, out: Path, limit: int | None = None,
          progress: Callable[[int], None] | None = None) -> BackgroundBuild:
    """Embed the images under ``folder`` (at most ``limit``, in path order) into ``out``.

    Raises:
        InvalidRequest: ``folder`` is not a folder or holds no decodable image.
        StageUnavailable: the descriptor model cannot load.
    """
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} is not a folder")
    stage = DescriptorStage(ws.settings.descriptor, ws.settings.root)  # no gallery load
    status = stage.status()
    if not status.available:
        raise StageUnavailable("descriptor", status.reason, status.fix)
    paths = sorted(walk(folder))[:limit]
    vectors, skipped = [], 0
    for start in range(0, len(paths), BATCH):
        images = []
        for path in paths[start:start + BATCH]:
            try:
                images.append(decode_file(path, ws.limits))
            except (MonitorError, OSError):
                skipped += 1
        if images:
            vectors.append(stage.compute(images))
        if progress:
            progress(len(paths[start:start + BATCH]))
    if not vectors:
        raise InvalidRequest(f"no decodable image under {folder}")
    stacked = np.concatenate(vectors)
    background.save(out, stacked)
    return BackgroundBuild(len(stacked), skipped, out)
