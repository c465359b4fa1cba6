"""Border trimming: the box of an image's content without uniform borders.

As ImageMagick's ``-trim`` does, repeated so a coloured pad around a white canvas
goes too. Used by :meth:`monitor.imaging.decode.DecodedImage.content_box` before hashing and
feature extraction, so padded copies hash like their original and small clip art
on a large canvas keeps its resolution.
"""

from __future__ import annotations

import numpy as np

TRIM_TOLERANCE = 24
"""Grey-level difference (of 255) from the border colour that counts as content."""
TRIM_MIN = 0.08
"""Trimming may not leave less than this fraction of the width or height."""
TRIM_PASSES = 3
TRIM_SIDE = 256
"""Longest side (pixels) of the copy the trim box is searched on."""
TRIM_EDGE = 3
"""Pixels ignored at the edge of each pass (JPEG ringing where a pad meets the canvas)."""


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` of ``rgb`` ``(H, W, 3) uint8`` minus uniform borders.

    Each pass ignores a :data:`TRIM_EDGE`-pixel ring, then takes the border colour as
    the median of the outermost remaining pixel frame; a row or column
    is content when more than 0.5 % of its pixels differ from it by more than
    :data:`TRIM_TOLERANCE` in any channel (robust to JPEG ringing). A pixel is within
    the tolerance when every channel lies in ``[ceil(m - tol), floor(m + tol)]`` for
    the median ``m`` (``cv2.inRange``, one pass over ``uint8``).
    """
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    for _ in range(TRIM_PASSES):
        e = TRIM_EDGE if min(x1 - x0, y1 - y0) > 8 * TRIM_EDGE else 0
        view = rgb[y0 + e:y1 - e, x0 + e:x1 - e]
        vh, vw = view.shape[:2]
        frame = np.concatenate([view[0], view[-1], view[:, 0], view[:, -1]])
        med = np.median(frame, axis=0)
        near = cv2.inRange(view, np.ceil(med - TRIM_TOLERANCE), np.floor(med + TRIM_TOLERANCE))
        near_in_row = cv2.reduce(near, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        near_in_col = cv2.reduce(near, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        rows = np.flatnonzero((vw - near_in_row) / vw > 0.005)
        cols = np.flatnonzero((vh - near_in_col) / vh > 0.005)
        if not len(rows) or not len(cols):
            break
        nx0, ny0 = x0 + e + int(cols[0]), y0 + e + int(rows[0])
        nx1, ny1 = x0 + e + int(cols[-1]) + 1, y0 + e + int(rows[-1]) + 1
        if (nx1 - nx0) < TRIM_MIN * w or (ny1 - ny0) < TRIM_MIN * h:
            break
        if (nx0, ny0, nx1, ny1) == (x0 + e, y0 + e, x1 - e, y1 - e):
            break
        x0, y0, x1, y1 = nx0, ny0, nx1, ny1
    return x0, y0, x1, y1
