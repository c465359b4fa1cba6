"""Writing files so readers never see a part of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, payload: bytes) -> Path:
    """Replace ``path`` with ``payload`` so readers see the old or the new file, never a
    part (temporary file in the same folder, fsync, ``os.replace``); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.replace(fh.name, path)
    except OSError:
        Path(fh.name).unlink(missing_ok=True)
        raise
    return path
