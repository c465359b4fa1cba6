"""Threshold rules from ``rules/*.toml``: which matches are violations, which go to review.

A rule file holds one or more ``[[rule]]`` tables::

    [[rule]]
    name = "copy"
    collections = ["*"]          # collection names in scope; "*" = every collection
    verdict = "violation"        # or "review"
    severity = "high"            # free text shown in reports: high, medium, low ...
    hash_max_distance = 6        # pHash Hamming distance, bits of 64 (omit: stage ignored)
    local_min_inliers = 16       # RANSAC inliers
    clip_min_cosine = 0.95       # cosine similarity
    crop_min_agreement = 0.9     # dense agreement of a crop placement (local stage, plain
                                 # graphics too poor in keypoints for a homography)
    min_confidence = 0.9         # the match's calibrated confidence in [0, 1], all of its
                                 # evidence together (monitor/matching/confidence.py): one threshold
    min_target_overlap = 0.5     # constraint, not evidence: share in [0, 1] of the protected
                                 # image that was copied (monitor/matching/overlap.py)
    min_query_overlap = 0.1      # constraint: share in [0, 1] of the found image that is the copy
    allow_domains = ["partner.example"]   # hosts (and their subdomains) that hold a licence
    allow_urls = ["*/press-kit/*"]        # fnmatch patterns on the candidate URL or path

    [[rule.corroborated]]        # optional, repeatable: met when ALL of its keys hold
    hash_max_distance = 10       # for one match (weak evidence from two sources that agree)
    local_min_inliers = 6
    [[rule.corroborated]]
    hash_max_distance = 10
    min_agreement = 0.8          # dense agreement (local stage's cell check), in [0, 1]

A match satisfies a rule when *any* configured stage threshold is met, or when
*every* threshold of one of its ``corroborated`` tables is met. Rules are
tried violation-first, then in file order; the first satisfied rule decides.
A candidate whose URL or path is allow-listed by a satisfied rule is ``allowed``.

``min_query_overlap`` and ``min_target_overlap`` are *constraints*, not evidence: they
narrow the rule (or the ``corroborated`` table they are written in) to matches whose
overlap reaches them, ANDed with its evidence. A match whose overlap is unknown (no
stage measured it: e.g. a CLIP or whole-image SSCD hit without a homography) does not
meet them, as a missing stage does not meet its threshold. A rule with overlap keys
but no threshold, or a ``corroborated`` table with fewer than two thresholds besides
them, is refused. So "a violation only when half of the protected image was copied,
else review" (a shared background, logo or frame matches a small part) is::

    [[rule]]
    name = "copy"
    local_min_inliers = 10
    min_target_overlap = 0.5

    [[rule]]
    name = "partial-copy"
    verdict = "review"
    local_min_inliers = 10
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.errors import RuleError
from monitor.types import Match, RuleOutcome, Verdict


class _Thresholds(BaseModel):
    """Per-stage thresholds, each optional (None: that evidence is not asked for)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hash_max_distance: int | None = Field(None, ge=0, le=64)
    local_min_inliers: int | None = Field(None, ge=4)
    clip_min_cosine: float | None = Field(None, ge=-1.0, le=1.0)
    crop_min_agreement: float | None = Field(None, ge=0.0, le=1.0)
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    min_query_overlap: float | None = Field(None, ge=0.0, le=1.0)
    min_target_overlap: float | None = Field(None, ge=0.0, le=1.0)

    def configured(self) -> int:
        """How many evidence thresholds are set (the overlap constraints are not counted:
        they narrow evidence, they are none)."""
        return sum(v is not None for v in (self.hash_max_distance, self.local_min_inliers,
                                           self.clip_min_cosine, self.crop_min_agreement,
                                           self.min_confidence))

    def checks(self, match: Match) -> list[bool]:
        """Whether ``match`` meets each *configured* threshold, in field order."""
        d, c, n = match.distance, match.cosine, match.inliers
        out = []
        if self.hash_max_distance is not None:
            out.append(d is not None and d <= self.hash_max_distance)
        if self.local_min_inliers is not None:
            out.append(n is not None and n >= self.local_min_inliers)
        if self.clip_min_cosine is not None:
            out.append(c is not None and c >= self.clip_min_cosine)
        if self.crop_min_agreement is not None:
            p = match.placement
            out.append(p is not None and p >= self.crop_min_agreement)
        if self.min_confidence is not None:
            out.append(match.score >= self.min_confidence)
        return out

    def constrains(self) -> bool:
        """True when an overlap constraint is set."""
        return self.min_query_overlap is not None or self.min_target_overlap is not None

    def overlaps(self, match: Match) -> bool:
        """Whether ``match`` meets every configured overlap constraint (True when none is
        set; an unknown overlap meets none)."""
        return all(v is not None and v >= floor for v, floor in (
            (match.query_overlap, self.min_query_overlap),
            (match.target_overlap, self.min_target_overlap)) if floor is not None)


class Corroboration(_Thresholds):
    """Thresholds that must *all* hold for one match (at least two kinds of evidence).

    Weak evidence from independent sources that agree (a pHash 4-10 bits away and a
    homography with 6-9 inliers, or a high dense agreement, on the same gallery
    image) is stronger than either alone; simple graphics (flags, icons) rarely
    give a copy 10 inliers.
    """

    min_agreement: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _two_kinds(self) -> Corroboration:
        if self.configured() < 2:
            raise ValueError("corroborated needs at least two kinds of evidence")
        return self

    def configured(self) -> int:
        """How many thresholds are set, the dense agreement's included."""
        return super().configured() + (self.min_agreement is not None)

    def checks(self, match: Match) -> list[bool]:
        """The stage thresholds' checks plus the dense agreement's, if configured."""
        out = super().checks(match)
        if self.min_agreement is not None:
            out.append(match.agreement is not None and match.agreement >= self.min_agreement)
        return out

    def satisfied_by(self, match: Match) -> bool:
        """True when ``match`` has evidence meeting every configured threshold and meets
        the table's overlap constraints."""
        return all(self.checks(match)) and self.overlaps(match)


class Rule(_Thresholds):
    """One validated rule (see the module docstring for the file format)."""

    name: str
    collections: list[str] = Field(default_factory=lambda: ["*"])
    verdict: Literal["violation", "review"] = "violation"
    severity: str = "high"
    corroborated: list[Corroboration] = Field(default_factory=list)
    allow_domains: list[str] = Field(default_factory=list)
    allow_urls: list[str] = Field(default_factory=list)
    source: str = ""

    def in_scope(self, collection: str) -> bool:
        """True when ``collection`` is covered by this rule."""
        return "*" in self.collections or collection in self.collections

    @model_validator(mode="after")
    def _evidence_to_constrain(self) -> Rule:
        if self.constrains() and not self.configured() and not self.corroborated:
            raise ValueError("min_query_overlap and min_target_overlap only narrow a rule's "
                             "evidence: set at least one threshold (e.g. min_confidence)")
        if not (self.configured() or self.corroborated or self.allow_domains
                or self.allow_urls):
            raise ValueError("the rule sets no threshold and no allow-list, so it can never "
                             "apply: add e.g. min_confidence = 0.5, or allow_domains")
        return self

    def satisfied_by(self, match: Match) -> bool:
        """True when ``match`` meets the rule's overlap constraints and any configured
        stage threshold is met by its evidence, or all of one ``corroborated`` table's."""
        return self.overlaps(match) and (any(self.checks(match))
                                         or any(t.satisfied_by(match) for t in self.corroborated))

    def is_allow_list(self) -> bool:
        """True for a rule with an allow-list and no stage thresholds."""
        return (not self.configured() and not self.corroborated
                and bool(self.allow_domains or self.allow_urls))

    def allows(self, location: str) -> bool:
        """True when ``location`` (URL or path) is on this rule's allow-list."""
        host = (urlsplit(location).hostname or "").lower()
        if any(host == d.lower() or host.endswith("." + d.lower()) for d in self.allow_domains):
            return True
        return any(fnmatch.fnmatch(location, pat) for pat in self.allow_urls)


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: list[Rule]


def load_rules(folder: Path) -> list[Rule]:
    """Every rule in ``folder/*.toml``, sorted violation-first, then by file and order.

    Raises:
        RuleError: a file is not TOML, or a key is unknown or has a bad value;
            the message names the file and the key (e.g. ``rule[0].verdict``).
    """
    rules: list[Rule] = []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            parsed = _RuleFile.model_validate(data)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"{path}: not valid TOML: {exc}") from exc
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(_loc(e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RuleError(f"{path}: {where}") from exc
        rules += [r.model_copy(update={"source": path.name}) for r in parsed.rule]
    return sorted(rules, key=lambda r: r.verdict != "violation")


def _loc(loc: tuple) -> list[str]:
    out: list[str] = []
    for part in loc:
        if isinstance(part, int) and out:
            out[-1] += f"[{part}]"
        else:
            out.append(str(part))
    return out


@dataclass(frozen=True)
class RuleSet:
    """Rules applied to one candidate's matches."""

    rules: list[Rule]

    def judge(self, match: Match, collection: str, location: str) -> RuleOutcome | None:
        """The first rule in scope that ``match`` satisfies, as an outcome; else None.

        A rule with an allow-list but no stage thresholds is a pure allow-list
        (e.g. ``licensed-domains`` written by ``violations set-status --allow-domain``):
        it never flags, but turns any flagged match at an allowed location into ``allowed``.
        """
        for rule in self.rules:
            if rule.in_scope(collection) and rule.satisfied_by(match):
                allowed = rule.allows(location) or any(
                    r.is_allow_list() and r.in_scope(collection) and r.allows(location)
                    for r in self.rules)
                verdict = Verdict.ALLOWED if allowed else Verdict(rule.verdict)
                return RuleOutcome(match, verdict, rule.name, rule.severity)
        return None


SEVERITY_ORDER = (Verdict.VIOLATION, Verdict.REVIEW, Verdict.ALLOWED, Verdict.CLEAN)


def overall(outcomes: list[RuleOutcome]) -> Verdict:
    """The most severe verdict among ``outcomes`` (CLEAN when empty)."""
    verdicts = {o.verdict for o in outcomes}
    return next((v for v in SEVERITY_ORDER if v in verdicts), Verdict.CLEAN)
