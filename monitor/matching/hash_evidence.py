"""pHash evidence checked by the dense check: the whole candidate's codes and its sub-images'.

A pHash hit alone says two images look alike at 32×32 pixels; the engine keeps it with
the dense agreement (:meth:`~monitor.matching.stages.local.LocalStage.aligned`) so corroborated
rules can ask for both. Plain graphics are where pHash is weakest (flags, pictograms,
star fields), so the guards here are measured on the benchmark (``bench/RESULTS.md``):
degenerate codes, far hits, sub-images of another shape or too small to hash.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from monitor.config import Settings
from monitor.imaging.decode import DecodedImage
from monitor.matching.stages.hash import informative
from monitor.matching.stages.local import LocalStage
from monitor.matching.stages.local_geometry import stretch
from monitor.matching.stages.local_regions import Region
from monitor.matching.stages.local_regions import regions as proposed_regions
from monitor.types import Hit

if TYPE_CHECKING:
    from monitor.matching.engine import Engine

DECISIVE_BITS = 3
"""A pHash hit this close (bits) counts as found, so sub-images are not hashed
(the default rule's ``hash_max_distance``)."""

FAR_HITS, FAR_AGREEMENT, FAR_MIN_CELLS = 5, 0.9, 32
"""Sub-image pHash hits beyond ``hash.max_distance``: how many are checked per sub-image
(nearest first), and the dense check they must pass: 0.9 of at least half the 8×8 grid
agreeing. Measured (benchmark seeds 5 and 11): a flag's band (Niger's disc) matched
Japan's flag at 1.0 on 28 cells, a flowchart symbol was placed in another at 0.95 on 20;
the copies found so agreed on 34-51."""

REGION_CHECKS_SOURCE = (
    "bench.scale seed 5, gallery 10k: the sub-image pHash checks took 31 % of unrelated "
    "candidates' time (4.6 dense checks, up to 16, 213 ms on average for a candidate that "
    "ran them); of 458 copies found, the 3 found through a sub-image's pHash hit were "
    "confirmed by the nearest hit checked (4, 4 and 6 bits)")
"""Measurement behind ``hash.region_checks``'s default."""

REGION_MAX_STRETCH = 2.0
"""A sub-image's pHash hit counts only when the sub-image has the gallery image's shape
within this stretch of one axis (either orientation). Screenshot and meme templates resize
a copy into their boxes; on benchmark seed 23 the sub-images that found copies were within
1.25 of the gallery image's shape, while strips of two text-justify icons' lines, 3.8
from Uruguay's flag, agreed with its stripes."""

REGION_MIN_CONTENT, REGION_MIN_SHARE = 60, 0.02
"""A sub-image is looked up by its pHash only when its trimmed content covers at least
``REGION_MIN_CONTENT`` squared pixels (working copy) or ``REGION_MIN_SHARE`` of the
candidate: pHash samples the content on a 32×32 grid, and a plain graphic a few dozen
pixels wide in a large page hashes like other plain graphics. Tuned on benchmark
gallery 300, seeds 5, 11 and 23 (a thin margin, so a tuned value, not a derived one):
a corner of Kuwait's flag (70×47 px, 1.1 % of a screenshot) and Niger's disc (53×53,
0.9 %) were flagged as the anarcho-communist and Japanese flags at 6 and 12 bits; of
the sub-images that found copies the smallest were 63×62 px at 1.3 % (a screenshot, 12
bits: 64 px lost it) and 46×46 at 5.9 % (a shrunken combo copy: pixels alone lost it)."""

WIDE_BITS, WIDE_MIN_CELLS = 10, 24
"""A pHash hit more than ``WIDE_BITS`` bits off (whole image or sub-image) has its dense
agreement judged on at least ``WIDE_MIN_CELLS`` textured cells of the 8×8 grid, else it
has none. Set on benchmark gallery 300, seed 5: plain flags and symbols flagged at 12
bits and agreement 0.94-1.0 had 4-23 cells; the copies flagged so had 24 or more, except
Djibouti's flag under an overlay (under 12, now missed)."""


def decisive(hits: list[Hit], settings: Settings) -> bool:
    """True when ``hits`` already hold a pHash hit within :data:`DECISIVE_BITS` or a
    local hit of ``min_inliers``: no need to look at sub-images."""
    return any((h.distance is not None and h.distance <= DECISIVE_BITS)
               or (h.inliers is not None and h.inliers >= settings.local.min_inliers)
               for h in hits)


def too_small(sub: DecodedImage, image: DecodedImage) -> bool:
    """Whether sub-image ``sub`` of candidate ``image`` has trimmed content under
    :data:`REGION_MIN_CONTENT` squared pixels and under :data:`REGION_MIN_SHARE` of the
    candidate (both in working-copy pixels)."""
    x0, y0, x1, y1 = sub.content_box()
    area = (x1 - x0) * (y1 - y0)
    return area < REGION_MIN_CONTENT ** 2 and area < REGION_MIN_SHARE * image.image.width \
        * image.image.height


class HashEvidence:
    """pHash hits of one engine's gallery, with their dense agreement.

    Attributes:
        engine: the :class:`~monitor.matching.engine.Engine` whose stages, indices and settings
            are used (read only).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def retrieve(self, image: DecodedImage) -> tuple[list[Hit], list[Hit]]:
        """The candidate's pHash hits, unverified: ``(informative, degenerate)``, each the
        nearest ``retrieval.hash_k`` gallery images within ``hash.max_distance`` bits. Hits
        of a degenerate code (flat or striped image,
        :data:`~monitor.matching.stages.hash.MIN_CODE_BITS`) count only when the dense
        check confirms them (:meth:`verify`)."""
        stage, index = self.engine.hash, self.engine.hash_index
        limit = self.engine.settings.retrieval.hash_k
        codes = stage.compute(image)
        ok = informative(codes)
        hits = stage.search(codes[ok], index, limit=limit)
        seen = {h.gallery_id for h in hits}
        weak = [h for h in stage.search(codes[~ok], index, limit=limit)
                if h.gallery_id not in seen]
        return hits, weak

    def verify(self, image: DecodedImage, local: LocalStage | None, hits: list[Hit],
               weak: list[Hit]) -> list[Hit]:
        """Retrieved pHash hits with their dense agreement when the local stage runs (for
        corroborated rules); degenerate-code hits only where the dense check confirms
        them (``local.min_agreement``), and never without the local stage."""
        if local is None:
            return hits
        return self.with_agreement(image, local, hits) + self.confirmed(image, local, weak)

    def regions(self, image: DecodedImage, local: LocalStage) -> list[Hit]:
        """pHash hits of the candidate's rectangular sub-images (a copy pasted whole
        into a screenshot or meme, too plain for keypoints), each with its box as the
        region. Kept only when the dense check confirms them (agreement of at least
        ``local.min_agreement``): a flat patch of page hashes like any flat gallery
        image (measured: a near-uniform wallpaper at 0-3 bits from 6 of 1,000
        distractors' sub-images, with no textured cell to check), and only when the
        sub-image has the gallery image's shape (:data:`REGION_MAX_STRETCH`); sub-images
        whose content is small in pixels and in share (:func:`too_small`) are not hashed.
        Searched out to ``hash.region_max_distance`` bits; of the hits beyond
        ``hash.max_distance`` the nearest :data:`FAR_HITS` per sub-image are candidates,
        kept at :data:`FAR_AGREEMENT` on :data:`FAR_MIN_CELLS` textured cells. Of all the
        sub-images' hits, only the ``hash.region_checks`` nearest are dense-checked, so a
        candidate's cost here is bounded (:data:`REGION_CHECKS_SOURCE`)."""
        settings, stage = self.engine.settings, self.engine.hash
        near = settings.hash.max_distance
        todo: list[tuple[Region, Hit]] = []
        for region in proposed_regions(image, settings.local.proposals):
            if too_small(region.image, image):
                continue
            found = stage.search(stage.compute(region.image), self.engine.hash_index,
                                 max(near, settings.hash.region_max_distance),
                                 limit=settings.retrieval.hash_k)
            found = [h for h in found if self.shaped_like(region.image, h.gallery_id)]
            far = [h for h in found if h.distance > near][:FAR_HITS]
            todo += [(region, h) for h in found if h.distance <= near or h in far]
        todo.sort(key=lambda t: t[1].distance)  # stable: a tie keeps the larger region first
        hits = []
        for region, h in todo[:settings.hash.region_checks]:
            strict = (FAR_AGREEMENT, FAR_MIN_CELLS) if h.distance > near else (None, 0)
            hits += [replace(k, region=region.box)
                     for k in self.confirmed(region.image, local, [h], *strict)]
        return hits

    def shaped_like(self, image: DecodedImage, gallery_id: int) -> bool:
        """Whether the trimmed content of ``image`` (a sub-image) has the shape of gallery
        image ``gallery_id``'s within :data:`REGION_MAX_STRETCH` (``local_geometry.stretch``);
        True when the gallery image has no local features to take its shape from."""
        x0, y0, x1, y1 = image.content_box()
        refs = self.engine.local_index.features(gallery_id)
        return not refs or any(stretch((x1 - x0, y1 - y0), ref.size) <= REGION_MAX_STRETCH
                               for ref in refs)

    def with_agreement(self, image: DecodedImage, local: LocalStage, hits: list[Hit],
                       min_cells: int = 0) -> list[Hit]:
        """``hits`` (pHash) with the dense agreement of ``image`` against each gallery image
        (:meth:`LocalStage.aligned`, judged on at least ``min_cells`` textured cells, and
        on :data:`WIDE_MIN_CELLS` for a hit more than :data:`WIDE_BITS` bits off)."""
        return [replace(h, agreement=local.aligned(
            image, self.engine.local_index, h.gallery_id,
            max(min_cells, WIDE_MIN_CELLS if (h.distance or 0) > WIDE_BITS else 0)))
            for h in hits]

    def confirmed(self, image: DecodedImage, local: LocalStage, hits: list[Hit],
                  floor: float | None = None, min_cells: int = 0) -> list[Hit]:
        """Those of :meth:`with_agreement` whose agreement reaches ``floor`` (default
        ``local.min_agreement``)."""
        floor = self.engine.settings.local.min_agreement if floor is None else floor
        return [h for h in self.with_agreement(image, local, hits, min_cells)
                if h.agreement is not None and h.agreement >= floor]
