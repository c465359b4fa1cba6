"""Typed results that flow from the stages to rules, store, CLI and reports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels of the *original* candidate image, x1/y1 exclusive
(``target_region``: of the original protected image)."""

Quad = tuple[tuple[float, float], ...]
"""Four ``(x, y)`` corners of the gallery image projected onto the candidate (pixels)."""


class Verdict(StrEnum):
    """Outcome for one candidate, most severe first."""

    VIOLATION = "violation"
    REVIEW = "review"
    ALLOWED = "allowed"
    CLEAN = "clean"
    ERROR = "error"


@dataclass(frozen=True)
class Hit:
    """One stage's evidence that a candidate matches one gallery image.

    Attributes:
        stage: ``"hash"``, ``"descriptor"``, ``"clip"`` or ``"local"``.
        gallery_id: primary key of the protected image.
        score: this stage's own score in [0, 1] (see each stage's ``score``); the
            match's confidence combines all hits (:mod:`monitor.matching.confidence`).
        distance: Hamming distance in bits of 64 (hash stage), else None.
        cosine: cosine similarity in [-1, 1] (clip stage), else None.
        inliers: RANSAC homography inliers (local stage; None for a crop placement),
            else None.
        region: matched area on the candidate (local stage; the view a descriptor or
            sub-image pHash hit came from), else None.
        quad: projected gallery corners on the candidate (local stage), else None.
        mirrored: the match was found against the mirrored gallery image.
        agreement: dense check (``monitor.matching.stages.local_dense``), the fraction in
            [0, 1] of textured gallery cells that agree with the candidate: warped by
            the homography (local stage), placed as a crop (local stage, ``inliers``
            None: ``monitor.matching.stages.local_crop``) or stretched onto the gallery image as
            the pHash matched it (hash stage, when the local stage runs); else None.
        similarity: SSCD cosine similarity in [-1, 1] (descriptor stage), else None.
        normalised: that similarity minus the candidate's similarity to its k-th nearest
            background image (descriptor stage, :mod:`monitor.matching.background`); equal
            to ``similarity`` when no background set is configured; else None.
        structure: structure agreement in [0, 1] of a descriptor hit
            (:mod:`monitor.matching.stages.structure`), else None.
        query_overlap: share in [0, 1] of the candidate's area that is the copy
            (:mod:`monitor.matching.overlap`), None when not measured.
        target_overlap: share in [0, 1] of the protected image's area that was copied,
            None when not measured.
        target_region: that copied part as a box ``(x0, y0, x1, y1)`` in pixels of the
            *protected* image's original, None when unknown.
    """

    stage: str
    gallery_id: int
    score: float
    distance: int | None = None
    cosine: float | None = None
    inliers: int | None = None
    region: Box | None = None
    quad: Quad | None = None
    mirrored: bool = False
    agreement: float | None = None
    similarity: float | None = None
    normalised: float | None = None
    structure: float | None = None
    query_overlap: float | None = None
    target_overlap: float | None = None
    target_region: Box | None = None


@dataclass(frozen=True)
class Match:
    """A candidate × gallery image pair with every stage's evidence merged.

    ``stage`` is the stage of the hit with the highest own score; ``score`` is the
    calibrated confidence in [0, 1] of all the hits together
    (:func:`monitor.matching.confidence.confidence`); ``hits`` keeps all of them.
    """

    gallery_id: int
    stage: str
    score: float
    hits: tuple[Hit, ...]

    def evidence(self, stage: str) -> Hit | None:
        """The hit from ``stage``, if that stage matched this pair."""
        return next((h for h in self.hits if h.stage == stage), None)

    @property
    def distance(self) -> int | None:
        """Hamming distance (bits) from the hash stage, if any."""
        h = self.evidence("hash")
        return h.distance if h else None

    @property
    def cosine(self) -> float | None:
        """Cosine similarity from the clip stage, if any."""
        h = self.evidence("clip")
        return h.cosine if h else None

    @property
    def inliers(self) -> int | None:
        """RANSAC inliers from the local stage, if any."""
        h = self.evidence("local")
        return h.inliers if h else None

    @property
    def similarity(self) -> float | None:
        """Raw SSCD cosine similarity from the descriptor stage, if any."""
        h = self.evidence("descriptor")
        return h.similarity if h else None

    @property
    def normalised(self) -> float | None:
        """Score-normalised SSCD similarity from the descriptor stage, if any."""
        h = self.evidence("descriptor")
        return h.normalised if h else None

    @property
    def agreement(self) -> float | None:
        """The highest dense agreement among the hits (see :class:`Hit`), if any."""
        found = [h.agreement for h in self.hits if h.agreement is not None]
        return max(found) if found else None

    @property
    def placement(self) -> float | None:
        """Dense agreement of a local-stage crop placement (a local hit without inliers:
        ``LocalStage.placements``), if any."""
        h = self.evidence("local")
        return h.agreement if h is not None and h.inliers is None else None

    @property
    def region(self) -> Box | None:
        """Matched region on the candidate: the local stage's, else the sub-image a
        pHash hit came from (``monitor.matching.stages.local_regions``), if any."""
        h = self.evidence("local")
        if h is not None and h.region is not None:
            return h.region
        return next((x.region for x in self.hits if x.region is not None), None)

    @property
    def quad(self) -> Quad | None:
        """Projected gallery quadrilateral on the candidate, if any."""
        h = self.evidence("local")
        return h.quad if h else None

    def _overlap_hit(self) -> Hit | None:
        """The hit the overlap is read from: the one :attr:`region` comes from (the local
        stage's, else the first with a region), else a whole-image pHash hit."""
        h = self.evidence("local")
        if h is not None and h.region is not None:
            return h
        return (next((x for x in self.hits if x.region is not None), None)
                or next((x for x in self.hits if x.stage == "hash"), None))

    @property
    def query_overlap(self) -> float | None:
        """Share in [0, 1] of the candidate that is the copy (:mod:`monitor.matching.overlap`):
        the local stage's, else that of the hit the region comes from; 1.0 for a
        whole-image pHash hit; None when unknown."""
        h = self._overlap_hit()
        if h is None or h.query_overlap is not None:
            return h.query_overlap if h else None
        return 1.0 if h.stage == "hash" and h.region is None else None

    @property
    def target_overlap(self) -> float | None:
        """Share in [0, 1] of the protected image that was copied, from the same hit as
        :attr:`query_overlap`; 1.0 for a whole-image pHash hit; None when unknown."""
        h = self._overlap_hit()
        if h is None or h.target_overlap is not None:
            return h.target_overlap if h else None
        return 1.0 if h.stage == "hash" and h.region is None else None

    @property
    def target_region(self) -> Box | None:
        """The copied part of the protected image, ``(x0, y0, x1, y1)`` in its original
        pixels, from the same hit as :attr:`query_overlap`; None when unknown."""
        h = self._overlap_hit()
        return h.target_region if h else None


@dataclass(frozen=True)
class StageStatus:
    """Whether a stage can run; ``reason`` and ``fix`` explain when it cannot."""

    name: str
    enabled: bool
    available: bool
    reason: str = ""
    fix: str = ""


@dataclass(frozen=True)
class RuleOutcome:
    """The verdict the rules gave one match, and which rule gave it."""

    match: Match
    verdict: Verdict
    rule: str
    severity: str


@dataclass
class CheckResult:
    """Everything known about one checked candidate.

    ``outcomes`` holds the ruled matches, most severe first; ``error`` is set
    (and ``verdict`` is ERROR) when the candidate could not be checked.
    """

    source: str
    sha256: str | None
    verdict: Verdict
    outcomes: list[RuleOutcome] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    candidate_id: int | None = None


@dataclass(frozen=True)
class Validators:
    """What a previous 2xx response said about its representation, kept per URL for
    conditional requests (RFC 9110 §13.1).

    Attributes:
        etag: the ``ETag`` header, or None.
        last_modified: the ``Last-Modified`` header (HTTP date text), or None.
        sha256: hex sha256 of the body then received, or None.
        status: that response's HTTP status, or None.
    """

    etag: str | None
    last_modified: str | None
    sha256: str | None
    status: int | None


CONTEXT_CAP = 500
"""Longest page-context string kept (characters); longer ones are cut with an ellipsis."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")


def clean_text(value: object, cap: int = CONTEXT_CAP) -> str | None:
    """``value`` as one line of plain text: control and bidi-override characters removed,
    runs of white space made one space, at most ``cap`` characters (cut with ``…``);
    None when it is not a string or nothing is left."""
    if not isinstance(value, str):
        return None
    text = _SPACE.sub(" ", _CONTROL.sub("", value.replace("\t", " "))).strip()
    if len(text) > cap:
        text = text[:cap - 1].rstrip() + "…"
    return text or None


@dataclass(frozen=True)
class PageContext:
    """How an image appears where it was found, as the page shows it to a reader.

    Every field is cleaned plain text (:func:`clean_text`) or None; escaping is left to
    whatever displays it.

    Attributes:
        page_title: the page's ``<title>`` (a feed entry's title; a sitemap's none).
        alt: the ``img`` element's ``alt`` text.
        image_title: the ``img`` element's ``title`` attribute (an image sitemap's
            ``image:title``).
        caption: the enclosing ``<figure>``'s ``<figcaption>`` (an image sitemap's
            ``image:caption``).
    """

    page_title: str | None = None
    alt: str | None = None
    image_title: str | None = None
    caption: str | None = None

    @classmethod
    def of(cls, **values: object) -> PageContext | None:
        """A context of the given fields, each cleaned; None when all are empty."""
        ctx = cls(**{k: clean_text(v) for k, v in values.items()})
        return ctx if any(asdict(ctx).values()) else None

    @classmethod
    def from_dict(cls, data: object) -> PageContext | None:
        """The context held in ``data`` (job metadata, a stored row): its known string
        keys, cleaned; anything else is ignored. None when nothing usable is there."""
        if not isinstance(data, Mapping):
            return None
        return cls.of(**{f.name: data.get(f.name) for f in fields(cls)})

    def as_dict(self) -> dict[str, str]:
        """The fields that are set, as ``{name: text}`` (what is stored as JSON)."""
        return {k: v for k, v in asdict(self).items() if v}

    def filled(self, other: PageContext | None) -> PageContext:
        """This context with its empty fields taken from ``other``."""
        if other is None:
            return self
        mine, theirs = asdict(self), asdict(other)
        return PageContext(**{k: mine[k] or theirs[k] for k in mine})
