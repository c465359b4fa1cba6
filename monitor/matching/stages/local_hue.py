"""Hue agreement: do the colours of an aligned candidate keep the gallery image's hues?

The dense check (:mod:`monitor.matching.stages.local_dense`) compares grey structure cell by
cell, normalised per cell, so it cannot tell a flag from another flag of the same
layout in other colours: Bangladesh's red disc on green, cropped, lies on Laos's white
disc on blue at an agreement of 1.0 on 28 cells. The edits a copy goes through
(re-encoding, brightness, contrast, saturation, greyscale, sepia, posterisation,
vignettes; AugLy's and DISC21's families alike, which rotate no hue) keep every
pixel's hue or take colour away altogether. So among the pixels where both images are
chromatic, a copy keeps the hue; another graphic of the same layout does not.

:func:`hue_agreement` warps the candidate onto the gallery image's colour thumbnail,
as the dense check does, and returns the share of co-chromatic pixels whose hues lie
within :data:`HUE_TOLERANCE`. It abstains (None) when too few pixels are chromatic in
both (greyscale copies, black-and-white line art) and when the candidate is *toned*:
all its chromatic pixels share one hue, by their mean resultant length (Mardia & Jupp,
*Directional Statistics*, 2000), at the low chroma of a tint (sepia). So a recoloured
copy of a one-hued, muted picture (all browns) is not rejected either.

Used on the weakest evidence only, where grey structure alone decides: weak homographies
(under ``local.min_inliers``), crop placements, and the stretch or placement that
backs a pHash hit (:meth:`~monitor.matching.stages.local.LocalStage.aligned`).
"""

from __future__ import annotations

import numpy as np

from monitor.matching.stages.local_geometry import pull_back

HUE_TOLERANCE = 30.0
"""Degrees of hue (of 360) within which two pixels count as the same colour."""
MIN_CHROMA = 40
"""Chroma (max − min of R, G, B, of 255) from which a pixel counts as chromatic."""
MIN_SHARE = 0.05
"""Share of the covered pixels that must be chromatic in both images for a verdict."""
TONED = 0.95
"""Mean resultant length of the candidate's hues (1 = a single hue) from which it may
be toned (with :data:`TINT_CHROMA`)."""
TINT_CHROMA = 96
"""Median chroma (of 255) of a one-hued candidate's chromatic pixels below which it
counts as toned. Sepia gives every pixel a chroma of about 0.4 × its grey level (at
most about 70), and a saturation boost after it at most doubles that: benchmark seed 11's
filtered copy of Japan's flag (white to cream, red disc to brown) has chroma 48-63. A
one-coloured graphic in its own colours is more vivid (the Bahamas' aqua band, about
200; dark flag blues and greens about 100) and is judged."""


COLOUR_SHRINK = 2
"""The gallery colour thumbnail is the grey thumbnail's size divided by this (48 px for
96): hues are judged on regions (discs, bands, fields), not edges, and a third of the
memory of a full-size colour copy is then a twelfth."""


def colour_size(grey_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(w, h)`` pixels of the gallery colour thumbnail for a grey thumbnail of shape
    ``(h, w)``: each side divided by :data:`COLOUR_SHRINK`, at least 8 pixels."""
    return (max(8, round(grey_shape[1] / COLOUR_SHRINK)),
            max(8, round(grey_shape[0] / COLOUR_SHRINK)))


def colour_thumbnail(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3) uint8`` RGB of ``rgb`` ``(H, W, 3) uint8`` resized to ``size`` =
    ``(w, h)`` pixels (OpenCV ``INTER_AREA``)."""
    import cv2

    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


def _hue_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in radians (the HSI hue, see :func:`hue_agreement`) and chroma (of 255) of
    ``(..., 3)`` RGB."""
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    chroma = x.max(axis=-1) - x.min(axis=-1)
    hue = np.arctan2(np.sqrt(3.0) * (g - b), 2.0 * r - g - b)
    return hue, chroma


def _concentration(hue: np.ndarray) -> float:
    """Mean resultant length of angles ``hue`` (radians): 1 for one hue, 0 for spread."""
    return float(np.hypot(np.cos(hue).mean(), np.sin(hue).mean())) if hue.size else 0.0


def _toned(hue: np.ndarray, chroma: np.ndarray) -> bool:
    """True when chromatic pixels of hues ``hue`` (radians) and chroma ``chroma`` (of
    255) look toned: one hue (:data:`TONED`) at a tint's chroma (:data:`TINT_CHROMA`)."""
    return _concentration(hue) >= TONED and float(np.median(chroma)) < TINT_CHROMA


def hue_agreement(ref: np.ndarray, candidate: np.ndarray,
                  homography: np.ndarray) -> float | None:
    """Share in [0, 1] of co-chromatic pixels whose hues agree, or None (abstain).

    Args:
        ref: ``(h, w, 3) uint8`` RGB gallery thumbnail (:func:`colour_thumbnail`).
        candidate: ``(H, W, 3) uint8`` RGB candidate view.
        homography: ``(3, 3)`` ``ref`` pixels → ``candidate`` pixels.

    The hue is the angle of the opponent axes ``(2R − G − B, √3 (G − B))``, the HSI
    hue (Gonzalez & Woods, *Digital Image Processing*), a smooth form of the HSV
    hexcone hue; pixels below :data:`MIN_CHROMA` in either image, or
    outside the warped candidate, are not judged.
    """
    th, tw = ref.shape[:2]
    warped, cover = pull_back(candidate, homography, (tw, th))
    h_ref, c_ref = _hue_chroma(ref)
    h_cand, c_cand = _hue_chroma(warped)
    chromatic = cover & (c_cand >= MIN_CHROMA)
    both = chromatic & (c_ref >= MIN_CHROMA)
    if both.sum() < MIN_SHARE * max(1, cover.sum()) or _toned(h_cand[chromatic],
                                                              c_cand[chromatic]):
        return None
    diff = np.abs(np.angle(np.exp(1j * (h_cand[both] - h_ref[both]))))
    return float((diff <= np.radians(HUE_TOLERANCE)).mean())


HUE_MIN = 0.5
"""Hue agreement below which an alignment is rejected (:func:`hue_consistent`)."""


def hue_consistent(ref: np.ndarray | None, candidate: np.ndarray | None,
                   homography: np.ndarray, ref_size: tuple[int, int]) -> bool:
    """False only when :func:`hue_agreement` judges and finds less than :data:`HUE_MIN`.

    ``homography`` maps gallery *feature* pixels (an image of ``ref_size`` = ``(w, h)``)
    to candidate pixels, as :func:`~monitor.matching.stages.local_dense.cell_votes` takes it;
    ``candidate`` is the colour view those candidate pixels index. True when either
    colour image is missing (a gallery indexed before colour thumbnails).
    """
    if ref is None or candidate is None:
        return True
    th, tw = ref.shape[:2]
    m = homography @ np.diag([ref_size[0] / tw, ref_size[1] / th, 1.0])
    found = hue_agreement(ref, candidate, m)
    return found is None or found >= HUE_MIN
