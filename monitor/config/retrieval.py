"""The ``[retrieval]`` section: how candidates are shortlisted before verification.

Retrieve, then verify: the global signals (pHash codes, SSCD and CLIP vectors) of every
protected image are searched; only a bounded shortlist of gallery images is verified
with local features, dense checks and structure, and a candidate whose retrieval
evidence is far from any protected image stops there (the cascade).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

CASCADE_REFERENCE_SIZE = 1_000
"""Gallery size (images) up to which ``cascade_min_normalised`` applies unchanged: the
floor was chosen on benchmark galleries of 100 images (``bench.accuracy`` seed 5) and
measured unchanged in effect up to 1,000."""


class RetrievalSettings(BaseModel):
    """Retrieval: the indices always searched, the shortlist verified and the cascade."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shortlist: int = Field(
        16, ge=1, le=256, description="Gallery images verified per candidate at most, ranked "
        "by the calibrated confidence of their retrieval evidence (pHash distance, SSCD "
        "similarity and structure, CLIP), so the cost of a candidate does not grow with "
        "the gallery.")
    hash_k: int = Field(
        8, ge=1, le=256, description="Nearest gallery images kept per candidate from the pHash "
        "index (within hash.max_distance bits).")
    cascade_min_confidence: float = Field(
        0.01, ge=0.0, le=1.0, description="The cascade: a candidate goes on to verification "
        "(local features, region and dense checks) only when its retrieval evidence (pHash "
        "distance, SSCD similarity, structure agreement) gives some protected image this "
        "calibrated confidence, or an SSCD neighbour reaches cascade_min_normalised; the "
        "others stop after retrieval. 0 verifies every candidate. Chosen with "
        "cascade_min_normalised on benchmark seed 5: 70 % of unrelated candidates stop, "
        "0.4 % of the copies the default rules find are lost (bench/RESULTS.md).")
    cascade_min_normalised: float = Field(
        0.05, ge=-1.0, le=1.0, description="A score-normalised SSCD similarity at which a "
        "candidate is verified whatever its confidence (chained edits keep an SSCD "
        "neighbour that verification confirms with keypoints), for galleries of up to "
        "1,000 images; larger galleries add cascade_normalised_per_decade.")
    cascade_normalised_per_decade: float = Field(
        0.022, ge=0.0, le=0.2, description="How much cascade_min_normalised rises per tenfold "
        "growth of the gallery past 1,000 images: an unrelated candidate's best normalised "
        "SSCD similarity is a maximum over the gallery and grows with it. Measured with "
        "bench.scale (seed 5): the 70th percentile of unrelated candidates' best score was "
        "0.071 at 10,000 images and 0.100 at 200,000 (bench/RESULTS.md).")
    dense_flat_max: int = Field(
        10_000, ge=40, description="SSCD and CLIP indices search exactly up to this many "
        "vectors; above it they are trained as IVF indices at the next save (measured: a "
        "flat search of 5 vectors takes 2.7 ms at 10k, 24 ms at 50k; IVF about 1 ms).")
    hash_flat_max: int = Field(
        1_000_000, ge=40, description="The pHash index searches exactly up to this many codes "
        "(16 per protected image); above it, a binary IVF index.")
    mmap: bool = Field(
        True, description="Memory-map the saved indices at start-up instead of reading them "
        "whole (an index is read whole only when this process changes it).")

    def normalised_floor(self, gallery_size: int) -> float:
        """The cascade's SSCD floor for a gallery of ``gallery_size`` images:
        ``cascade_min_normalised + cascade_normalised_per_decade * log10(N / 1000)``, never
        below ``cascade_min_normalised`` (:data:`CASCADE_REFERENCE_SIZE`)."""
        decades = math.log10(max(gallery_size, CASCADE_REFERENCE_SIZE) / CASCADE_REFERENCE_SIZE)
        return self.cascade_min_normalised + self.cascade_normalised_per_decade * decades
