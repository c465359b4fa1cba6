"""Settings section ``[decode]``: the limits every input meets before any stage sees it.

Pure pydantic; :mod:`monitor.config` assembles and loads it. Candidates and gallery
images have separate size and pixel limits (the gallery is trusted input you add
yourself); ``memory_budget_mb`` bounds the decodes running at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DecodeSettings(BaseModel):
    """Limits applied to every input before any stage sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(50_000_000, description="Refuse inputs larger than this (bytes).")
    max_pixels: int = Field(
        80_000_000, description="Refuse images whose width*height exceeds this (bomb guard)."
    )
    gallery_max_bytes: int = Field(
        500_000_000, ge=1, description="Refuse gallery image files larger than this (bytes); "
        "a 100-Mpx photo saved as PNG weighs 150-300 MB.")
    gallery_max_pixels: int = Field(
        150_000_000, ge=1, le=178_000_000, description="Refuse gallery images (trusted input "
        "you add yourself) whose width*height exceeds this; medium-format cameras make "
        "100-Mpx photos. A 105-Mpx PNG decodes to about 315 MB of RGB at once (JPEG is "
        "decoded reduced, a few MB). At most 178,000,000: Pillow's own hard limit.")
    work_side: int = Field(
        1024, description="Longest side (pixels) of the working copy the stages share."
    )
    memory_budget_mb: int = Field(
        1024, ge=64, description="Memory (MiB) that decodes running at once may claim, "
        "estimated from each image's header (width x height x bytes per pixel); a decode "
        "that does not fit waits, one larger than the budget alone runs by itself."
    )
