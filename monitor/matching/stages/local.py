"""Stage ``local``: keypoints, descriptor voting and RANSAC-verified homographies.

Pipeline for one candidate: grey working copy at ``candidate_side`` (gallery
images at ``feature_side``) → RootSIFT keypoints (plus the mirrored view by
descriptor permutation) → vote a shortlist of gallery images from the FAISS
descriptor index (:class:`LocalIndex`) → for each shortlisted image (and each
``extra_ids`` from other stages), Lowe's ratio test (Lowe, IJCV 2004) on
brute-force 2-NN matches, then a homography by MAGSAC++ (Barath et al. 2020;
OpenCV ``USAC_MAGSAC``, a RANSAC of Fischler & Bolles 1981) with degeneracy
checks. The projected gallery corners give the quad and the region box on the
candidate, in original candidate pixels. A homography of ``corroborate_min_inliers``
(6) to ``min_inliers`` (10) inliers is kept as a *weak* hit, which flags only through
a rule's corroborated tables. When the whole candidate gives no hit of ``min_inliers``,
its largest rectangular sub-images (:mod:`monitor.matching.stages.local_regions`) are
checked alone: a copy pasted into a screenshot otherwise loses its keypoint
budget to the interface around it.

Detector choice, by measurement (series-disjoint corpus split, 100 gallery
images × 9 edit families, 1,000 unrelated edited distractors, default rules,
before region proposals and relaxed thresholds): SIFT (RootSIFT) recall 0.88
overall, screenshot 0.80, combo 0.66, about 90 ms of CPU per query; ORB recall
0.84, screenshot 0.50, combo 0.63, about 1.7x faster. ORB misses the small,
rescaled copies (screenshots, chains of edits), so SIFT is the default;
``detector = "orb"`` trades that for speed. Candidates and gallery images are
trimmed of uniform borders first, keypoint-poor images get relaxed SIFT
thresholds (:mod:`monitor.matching.stages.local_features`), and a verified homography
must also pass the dense agreement check (:mod:`monitor.matching.stages.local_dense`),
which removes series siblings that share only a template or frame; a weak one
(under ``min_inliers``) must also keep the gallery image's hues
(:mod:`monitor.matching.stages.local_hue`). Current figures: ``bench/RESULTS.md``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from monitor.config import LocalSettings
from monitor.imaging.decode import DecodedImage
from monitor.matching.index.local import LocalIndex
from monitor.matching.overlap import covered, measure
from monitor.matching.stages.local_crop import placement_hit, placement_supported
from monitor.matching.stages.local_dense import (
    CROP_MIN_CELLS,
    agreement,
    aligned_agreement,
    place_crop,
    thumbnail,
)
from monitor.matching.stages.local_features import Features, extract, feature_gray, mirror_sift
from monitor.matching.stages.local_geometry import Geometry, box, fit
from monitor.matching.stages.local_hue import colour_size, colour_thumbnail, hue_consistent
from monitor.matching.stages.local_matching import RATIO, ratio_matches
from monitor.matching.stages.local_regions import regions
from monitor.types import Hit

__all__ = ["Features", "LocalIndex", "LocalStage"]


class LocalStage:
    """Computes local features and verifies candidates against gallery views."""

    name = "local"

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self._features_key = ("local-features", self.settings.model_dump_json())

    def compute(self, image: DecodedImage, *, gallery: bool = False) -> Features:
        """Features of ``image``; candidates also carry their mirrored view.

        Gallery images keep ``gallery_features`` keypoints at ``feature_side`` pixels,
        candidates ``max_features`` at ``candidate_side`` (larger, so a small copy in a
        big candidate keeps its detail). Both are computed on the content with
        uniform borders trimmed
        (:meth:`DecodedImage.trimmed`), so pads and blank canvas cost no resolution.
        """
        s = self.settings
        side = s.feature_side if gallery else s.candidate_side
        content, offset, content_scale = image.trimmed(side)
        raw = np.asarray(content.convert("L"))
        gray = feature_gray(raw, side)
        n = s.gallery_features if gallery else s.max_features
        pts, desc = extract(gray, s.detector, n)
        size = (gray.shape[1], gray.shape[0])
        scale = content_scale * raw.shape[1] / gray.shape[1]
        if gallery:
            thumb = thumbnail(gray)
            colour = colour_thumbnail(np.asarray(content.convert("RGB")),
                                      colour_size(thumb.shape))
            return Features(pts, desc, size, scale, offset=offset, image=thumb, colour=colour,
                            original=(image.width, image.height))
        colour = colour_thumbnail(np.asarray(content.convert("RGB")), size)
        if s.detector == "orb":
            flipped = np.ascontiguousarray(gray[:, ::-1])
            mpts, mdesc = extract(flipped, "orb", n)
            mirror = Features(mpts, mdesc, size, scale, offset=offset, image=flipped,
                              colour=np.ascontiguousarray(colour[:, ::-1]))
        else:
            mirror = mirror_sift(Features(pts, desc, size, scale, offset=offset, image=gray,
                                          colour=colour))
        return Features(pts, desc, size, scale, mirror, offset, gray, colour)

    def candidate_features(self, image: DecodedImage) -> Features:
        """:meth:`compute` of candidate ``image``, computed once per image (shared by the
        pHash hits' placement check and the keypoint search)."""
        return image.derived(self._features_key, lambda: self.compute(image))

    def verify(self, query: Features, ref: Features, gallery_id: int,
               original_size: tuple[int, int], *, views: tuple[bool, ...] = (False, True),
               min_inliers: int | None = None) -> Hit | None:
        """A hit when ``query`` (or its mirror) contains ``ref`` under a sane homography.

        ``original_size`` is the candidate's ``(width, height)`` in pixels; ``views``
        says which candidate views to try (``True`` = mirrored). Returns None below
        ``min_inliers`` inliers (default: the ``min_inliers`` setting), below the
        dense agreement floor, for degenerate geometry, or for a weak homography (under
        the ``min_inliers`` setting) that changes the gallery image's hues.
        """
        floor = self.settings.min_inliers if min_inliers is None else min_inliers
        best = None
        for mirrored in views:
            view = query.mirror if mirrored else query
            if view is None:
                continue
            geo = self._geometry(view, ref, floor)
            if geo is not None and (best is None or geo.inliers > best[1].inliers):
                best = (mirrored, geo)
        if best is None or best[1].inliers < floor:
            return None
        mirrored, geo = best
        view = query.mirror if mirrored else query
        agree = None
        if ref.image is not None and view.image is not None:
            agree = agreement(ref.image, ref.size, view.image, geo.homography)
        if agree is not None and agree < self.settings.min_agreement \
                and geo.inliers < self.settings.agreement_exempt_inliers:
            return None
        if geo.inliers < self.settings.min_inliers and not hue_consistent(
                ref.colour, view.colour, geo.homography, ref.size):
            return None
        return self._hit(geo, mirrored, query, ref, gallery_id, original_size, agree)

    def _geometry(self, view: Features, ref: Features, floor: int) -> Geometry | None:
        if len(view) < 4 or len(ref) < 4:
            return None
        qi, ri = ratio_matches(view.descriptors, ref.descriptors, RATIO)
        if len(qi) < max(floor, 4):
            return None
        return fit(ref.keypoints[ri], view.keypoints[qi], ref.size, view.size, ref.keypoints)

    def _hit(self, geo: Geometry, mirrored: bool, query: Features, ref: Features,
             gallery_id: int, original_size: tuple[int, int], agree: float | None) -> Hit:
        """The hit of a verified fit: quad, region and overlap both ways
        (:func:`~monitor.matching.overlap.measure`) in original pixels."""
        quad = geo.quad.astype(np.float64)
        if mirrored:
            quad[:, 0] = query.size[0] - 1 - quad[:, 0]
        quad = quad * query.scale + np.asarray(query.offset)
        overlap = measure(quad, ref.frame(), query.frame(), original_size, ref.original)
        return Hit(stage=self.name, gallery_id=int(gallery_id), score=self.score(geo.inliers),
                   inliers=geo.inliers, region=box(quad, original_size),
                   quad=tuple((float(x), float(y)) for x, y in quad), mirrored=mirrored,
                   agreement=agree, **overlap.fields())

    def score(self, inliers: int) -> float:
        """Map inliers to [0, 1]: ``1 - 2 ** (-inliers / min_inliers)``.

        Monotone; 0.5 at the reporting threshold ``min_inliers``, 0.75 at twice it,
        0.94 at four times it.
        """
        return float(1.0 - 2.0 ** (-inliers / max(self.settings.min_inliers, 1)))

    def aligned(self, image: DecodedImage, index: LocalIndex, gallery_id: int,
                min_cells: int = 0) -> float | None:
        """Dense agreement of the candidate's whole trimmed content with gallery image
        ``gallery_id``: the better of the whole picture under the best dihedral transform
        (:func:`~monitor.matching.stages.local_dense.aligned_agreement`) and of its best crop
        placement (:func:`~monitor.matching.stages.local_dense.place_crop`; a pHash survives a
        crop of a flat graphic that no stretch aligns). A placement is the best of many
        scales and positions, so it counts only from ``crop_min_agreement`` up, as crop
        placement hits do (measured, seed 5: a flowchart symbol placed in another at
        0.81, 10 bits apart; the crop of a flag at 1.0, 6 bits). The check for a pHash
        hit that no homography backs. With ``min_cells``, the stricter check for a far
        pHash hit: stretch and placement each judged on at least that many textured
        cells. Either counts only where it keeps the gallery image's hues
        (:mod:`~monitor.matching.stages.local_hue`). None when the image has no thumbnail or no
        textured cell."""
        side = self.settings.feature_side
        gray = image.derived(("aligned", side), lambda: feature_gray(
            np.asarray(image.trimmed(side)[0].convert("L")), side))
        rgb = image.derived(("aligned-rgb", side), lambda: colour_thumbnail(
            np.asarray(image.trimmed(side)[0].convert("RGB")), (gray.shape[1], gray.shape[0])))
        found = []
        floor, cells = self.settings.crop_min_agreement, max(CROP_MIN_CELLS, min_cells)
        for ref in index.features(gallery_id):
            if ref.image is not None:
                colours = (ref.colour, rgb)
                placed = place_crop(ref.image, ref.size, gray, cells, colours) \
                    if floor > 0 else None
                kept = placed is not None and placed[0] >= floor and placement_supported(
                    self.candidate_features(image), ref, placed[1], gray.shape[1])
                found += [aligned_agreement(ref.image, ref.size, gray, min_cells, colours),
                          placed[0] if kept else None]
        found = [a for a in found if a is not None]
        return max(found) if found else None

    def match_image(self, image: DecodedImage, index: LocalIndex,
                    extra_ids: list[int] | None = None) -> list[Hit]:
        """Verified hits for a decoded candidate, best first (see :meth:`match`).

        Up to ``proposals`` rectangular sub-images
        (:func:`~monitor.matching.stages.local_regions.proposals`: a copy pasted into a
        screenshot, page or collage) are then checked on their own, largest first, each
        unless half of it is already covered by a strong hit's region (a collage holds
        several protected images; the whole candidate's keypoints may all go to one);
        their strong hits join. Regions and quads stay in the candidate's original pixels.
        """
        size, strong = (image.width, image.height), self.settings.min_inliers
        hits = self.match(self.candidate_features(image), index, size, extra_ids)
        found = [h.region for h in hits if (h.inliers or 0) >= strong and h.region]
        for region in regions(image, self.settings.proposals):
            if covered(region.box, found):
                continue
            f = self.compute(region.image)
            f = replace(f, offset=(f.offset[0] + region.offset[0], f.offset[1] + region.offset[1]))
            more = [h for h in self.match(f, index, size, extra_ids)
                    if (h.inliers or 0) >= strong]
            if more:
                hits = _best_per_image(more + hits)
                found += [h.region for h in more if h.region]
        return hits

    def match(self, query: Features, index: LocalIndex, original_size: tuple[int, int],
              extra_ids: list[int] | None = None) -> list[Hit]:
        """Verified hits for ``query``: the voted shortlist plus ``extra_ids``, best first.

        Shortlisted images are verified in the view (plain or mirrored) that voted for
        them, ``extra_ids`` (proposed by another stage) in both views, all down to
        ``corroborate_min_inliers``. A hit below ``min_inliers`` is weak: it only counts
        where a rule asks for corroborated evidence (:class:`monitor.matching.rules.Corroboration`),
        and on a voted image it gives way to a crop placement (:meth:`placements`).
        """
        todo: dict[int, set[bool]] = {}
        for (gid, mirrored), _ in self.shortlist(query, index):
            todo.setdefault(gid, set()).add(mirrored)
        voted = list(todo)
        extra = {int(g) for g in extra_ids or []}
        for gid in extra:
            todo[gid] = {False, True}
        s, hits = self.settings, []
        floor = min(s.min_inliers, s.corroborate_min_inliers)
        for gid, views in todo.items():
            for ref in index.features(gid):
                hit = self.verify(query, ref, gid, original_size, views=tuple(sorted(views)),
                                  min_inliers=floor)
                if hit is not None:
                    hits.append(hit)
        weak = [h for h in hits if h.gallery_id not in extra and h.inliers < s.min_inliers]
        hits = [h for h in hits if h.gallery_id in extra or h.inliers >= s.min_inliers]
        found = {h.gallery_id for h in hits}
        hits += self.placements(query, index, [g for g in voted if g not in found],
                                original_size)
        placed = {h.gallery_id for h in hits}
        return _best_per_image(hits + [h for h in weak if h.gallery_id not in placed])

    def placements(self, query: Features, index: LocalIndex, ids: list[int],
                   original_size: tuple[int, int]) -> list[Hit]:
        """Crop placements (:mod:`~monitor.matching.stages.local_crop`) of ``query`` in the first
        ``crop_checks`` of ``ids`` (voted gallery images no homography verified), kept at
        an agreement of ``crop_min_agreement`` or more: a crop of a plain graphic that
        gives too few keypoints for a homography. Such a hit has no ``inliers``; its
        ``agreement`` is what a rule's ``crop_min_agreement`` asks for."""
        s, hits = self.settings, []
        if s.crop_min_agreement <= 0 or query.image is None:
            return hits
        for gid in ids[:s.crop_checks]:
            for ref in index.features(gid):
                hit = placement_hit(query, ref, gid, original_size, s.crop_min_agreement)
                if hit is not None:
                    hits.append(hit)
        return hits

    def shortlist(self, query: Features, index: LocalIndex
                  ) -> list[tuple[tuple[int, bool], float]]:
        """``[((gallery_id, mirrored), votes)]``, best first, ``shortlist`` entries at most.

        The candidate and its mirrored view vote separately.
        """
        ranked = []
        for mirrored, view in ((False, query), (True, query.mirror)):
            if view is not None:
                found = index.search(view, self.settings.shortlist)
                ranked += [((gid, mirrored), v) for gid, v in found]
        ranked.sort(key=lambda kv: -kv[1])
        return ranked[:self.settings.shortlist]


def _best_per_image(hits: list[Hit]) -> list[Hit]:
    """The hit with most inliers (then score) per gallery image, best first."""
    best: dict[int, Hit] = {}
    for h in hits:
        old = best.get(h.gallery_id)
        if old is None or ((h.inliers or 0), h.score) > ((old.inliers or 0), old.score):
            best[h.gallery_id] = h
    return sorted(best.values(), key=lambda h: (-h.score, -(h.inliers or 0), h.gallery_id))

