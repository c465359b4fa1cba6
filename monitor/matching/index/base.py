"""Shared storage for flat indices: id-aligned arrays saved atomically with a fingerprint."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 2
"""Bump when the on-disk layout of any index changes; older files are rebuilt."""


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_arrays(path: Path, fingerprint: str, **arrays: np.ndarray) -> None:
    """Save named arrays plus ``fingerprint`` and :data:`FORMAT_VERSION` atomically (npz)."""
    buf = io.BytesIO()
    np.savez(buf, __fingerprint__=np.array(fingerprint),
             __version__=np.array(FORMAT_VERSION), **arrays)
    atomic_write(path, buf.getvalue())


def load_arrays(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    """Arrays saved by :func:`save_arrays`, or None when missing, stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["__version__"]) != FORMAT_VERSION or str(z["__fingerprint__"]) != fingerprint:
                return None
            return {k: z[k] for k in z.files if not k.startswith("__")}
    except (OSError, ValueError, KeyError):
        return None
