"""The retrieval tier: what the global signals found for one candidate, before verification.

Retrieve, then verify (the design of TinEye-style engines and of HMA's matchers): every
protected image keeps only global signals in the always-searched indices (pHash codes,
an SSCD descriptor, optionally a CLIP vector), so a lookup costs about the same for a
gallery of a thousand images or a million. What they return is a :class:`Retrieved`:
unverified hits per signal. From it the engine takes

* the **shortlist** (:meth:`Retrieved.ranked`): at most ``retrieval.shortlist`` gallery
  images whose own retrieval evidence reaches the cascade's thresholds, most confident
  first, which alone are verified;
* the **cascade**: a candidate with an empty shortlist stops here, with no local
  features, region checks or dense checks computed (most candidates a crawler brings
  are unrelated).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from monitor.config.retrieval import RetrievalSettings
from monitor.matching.confidence import merge_hits
from monitor.types import Hit


@dataclass(frozen=True)
class Retrieved:
    """Unverified hits of one candidate, per signal, each list best first.

    Attributes:
        hash: pHash hits of informative codes (``distance`` in bits), nearest first.
        weak_hash: pHash hits of degenerate codes (flat or striped images), which count
            only when the dense check confirms them.
        descriptor: SSCD hits (``similarity`` raw cosine, ``normalised`` score), best first.
        clip: CLIP hits (``score`` cosine), best first.

    The keypoint vote (:class:`~monitor.matching.index.local.VoteIndex`) is not a retrieval
    signal: it needs the candidate's local features, which is what the cascade saves.
    """

    hash: list[Hit] = field(default_factory=list)
    weak_hash: list[Hit] = field(default_factory=list)
    descriptor: list[Hit] = field(default_factory=list)
    clip: list[Hit] = field(default_factory=list)

    def ranked(self, settings: RetrievalSettings, cascade: bool = True,
               gallery_size: int = 0) -> list[int]:
        """Gallery ids worth verifying, most confident first by their own retrieval evidence
        (the calibrated confidence of their pHash hits, not yet dense-checked, and SSCD
        hits with structure agreement; :func:`monitor.matching.confidence.confidence`).

        With ``cascade`` (and ``cascade_min_confidence`` above 0) only ids that reach
        ``cascade_min_confidence``, have an SSCD neighbour at the normalised floor of a
        gallery of ``gallery_size`` images (:meth:`RetrievalSettings.normalised_floor`)
        or a CLIP hit (above ``clip.min_cosine``) are kept: the same test per gallery
        image as per candidate, so a candidate near one protected image does not pay to
        verify twenty unrelated ones (measured on benchmark seed 5: no copy the default
        rules find is lost by testing per image rather than per candidate)."""
        hits = ([replace(h, agreement=None) for h in self.hash + self.weak_hash]
                + self.descriptor + self.clip)
        if not cascade or settings.cascade_min_confidence <= 0:
            return [m.gallery_id for m in merge_hits(hits)]
        floor = settings.normalised_floor(gallery_size)
        return [m.gallery_id for m in merge_hits(hits)
                if m.score >= settings.cascade_min_confidence
                or any(h.stage == "clip" or (h.normalised is not None and h.normalised >= floor)
                       for h in m.hits)]

    def within(self, ids: set[int]) -> Retrieved:
        """The same hits restricted to gallery ``ids`` (the shortlist)."""
        return Retrieved([h for h in self.hash if h.gallery_id in ids],
                         [h for h in self.weak_hash if h.gallery_id in ids],
                         [h for h in self.descriptor if h.gallery_id in ids],
                         [h for h in self.clip if h.gallery_id in ids])
