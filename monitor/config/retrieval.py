"""The ``[retrieval]`` section: how candidates are shortlisted before verification.

Retrieve, then verify: the global signals (pHash codes, SSCD and CLIP vectors) of every
protected image are searched; only a bounded shortlist of gallery images is verified
with local features, dense checks and structure, and a candidate whose retrieval
evidence is far from any protected image stops there (the cascade).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
        "neighbour that verification confirms with keypoints).")
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
