"""The retrieval tier: what the global signals found for one candidate, before verification.

Retrieve, then verify (the design of TinEye-style engines and of HMA's matchers): every
protected image keeps only global signals in the always-searched indices (pHash codes,
an SSCD descriptor, optionally a CLIP vector), so a lookup costs about the same for a
gallery of a thousand images or a million. What they return is a :class:`Retrieved`:
unverified hits per signal. From it the engine takes

* the **cascade** decision (:meth:`Retrieved.near`): a candidate whose retrieval evidence
  gives no protected image a calibrated confidence of ``retrieval.cascade_min_confidence``
  stops here, with no local features, region checks or dense checks computed (most
  candidates a crawler brings are unrelated);
* the **shortlist** (:meth:`Retrieved.shortlist`): at most ``retrieval.shortlist``
  gallery images, ranked by that confidence, which alone are verified.
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

    def confidence(self) -> float:
        """The best calibrated confidence (:func:`monitor.matching.confidence.confidence`) of
        any gallery image from the retrieval evidence alone: pHash hits (no dense check
        yet) and SSCD hits with their structure agreement; 0 when nothing was retrieved."""
        hits = [replace(h, agreement=None) for h in self.hash] + self.descriptor
        return max((m.score for m in merge_hits(hits)), default=0.0)

    def near(self, settings: RetrievalSettings) -> bool:
        """Whether the candidate goes on to verification: its retrieval :meth:`confidence`
        reaches ``cascade_min_confidence``, an SSCD neighbour's normalised similarity
        reaches ``cascade_min_normalised``, or CLIP found a neighbour (above
        ``clip.min_cosine``; CLIP has no calibrated weight). Always True when
        ``cascade_min_confidence`` is 0."""
        if settings.cascade_min_confidence <= 0 or self.clip:
            return True
        if any(h.normalised is not None and h.normalised >= settings.cascade_min_normalised
               for h in self.descriptor):
            return True
        return self.confidence() >= settings.cascade_min_confidence

    def shortlist(self, k: int) -> list[int]:
        """At most ``k`` gallery ids, most confident first by the retrieval evidence (the
        calibrated confidence of their pHash, SSCD, structure and CLIP hits together)."""
        hits = ([replace(h, agreement=None) for h in self.hash + self.weak_hash]
                + self.descriptor + self.clip)
        return [m.gallery_id for m in merge_hits(hits)[:k]]

    def within(self, ids: set[int]) -> Retrieved:
        """The same hits restricted to gallery ``ids`` (the shortlist)."""
        return Retrieved([h for h in self.hash if h.gallery_id in ids],
                         [h for h in self.weak_hash if h.gallery_id in ids],
                         [h for h in self.descriptor if h.gallery_id in ids],
                         [h for h in self.clip if h.gallery_id in ids])
