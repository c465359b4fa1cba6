"""Rules: validation errors name file and key; thresholds and allow-lists decide verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import RuleError
from monitor.matching.rules import RuleSet, load_rules, overall
from monitor.types import Hit, Match, Verdict

DEFAULTS = Path(__file__).resolve().parent.parent / "monitor" / "defaults"


def _match(**evidence) -> Match:
    hits = []
    if "distance" in evidence:
        hits.append(Hit("hash", 1, 0.9, distance=evidence["distance"],
                        agreement=evidence.get("agreement")))
    if "inliers" in evidence:
        hits.append(Hit("local", 1, 0.9, inliers=evidence["inliers"]))
    if "cosine" in evidence:
        hits.append(Hit("clip", 1, 0.9, cosine=evidence["cosine"]))
    return Match(1, hits[0].stage, 0.9, tuple(hits))


def test_default_rules_load_violation_first() -> None:
    rules = load_rules(DEFAULTS)
    assert [r.verdict for r in rules][0] == "violation" and len(rules) >= 2


def test_thresholds_decide(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nhash_max_distance=6\nlocal_min_inliers=20\n'
        '[[rule]]\nname="maybe"\nverdict="review"\nclip_min_cosine=0.9\ncollections=["shop"]\n')
    rs = RuleSet(load_rules(tmp_path))
    assert rs.judge(_match(distance=6), "art", "x.jpg").verdict == Verdict.VIOLATION
    assert rs.judge(_match(distance=7), "art", "x.jpg") is None
    assert rs.judge(_match(inliers=19, distance=30), "art", "x.jpg") is None
    assert rs.judge(_match(inliers=20), "art", "x.jpg").rule == "copy"
    assert rs.judge(_match(cosine=0.95), "art", "x.jpg") is None  # out of scope
    assert rs.judge(_match(cosine=0.95), "shop", "x.jpg").verdict == Verdict.REVIEW


def test_corroborated_needs_every_threshold(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nhash_max_distance=3\nlocal_min_inliers=10\n'
        '[[rule.corroborated]]\nhash_max_distance=10\nlocal_min_inliers=6\n'
        '[[rule.corroborated]]\nhash_max_distance=10\nmin_agreement=0.8\n')
    rs = RuleSet(load_rules(tmp_path))
    assert rs.judge(_match(distance=8, inliers=6), "a", "x.jpg").rule == "copy"
    assert rs.judge(_match(distance=11, inliers=9), "a", "x.jpg") is None
    assert rs.judge(_match(distance=8, inliers=5), "a", "x.jpg") is None
    assert rs.judge(_match(distance=8), "a", "x.jpg") is None  # hash alone: 3 bits
    assert rs.judge(_match(inliers=9), "a", "x.jpg") is None  # local alone: 10 inliers
    assert rs.judge(_match(distance=3), "a", "x.jpg").rule == "copy"
    assert rs.judge(_match(distance=9, agreement=0.85), "a", "x.jpg").rule == "copy"
    assert rs.judge(_match(distance=9, agreement=0.75), "a", "x.jpg") is None
    assert rs.judge(_match(distance=12, agreement=1.0), "a", "x.jpg") is None


def test_allow_list(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nhash_max_distance=6\nallow_domains=["partner.example"]\n'
        'allow_urls=["*/press-kit/*"]\n')
    rs = RuleSet(load_rules(tmp_path))
    m = _match(distance=0)
    assert rs.judge(m, "a", "https://cdn.partner.example/a.jpg").verdict == Verdict.ALLOWED
    assert rs.judge(m, "a", "https://evil.example/press-kit/a.jpg").verdict == Verdict.ALLOWED
    assert rs.judge(m, "a", "https://notpartner.example/a.jpg").verdict == Verdict.VIOLATION
    outcomes = [rs.judge(m, "a", "https://cdn.partner.example/a.jpg")]
    assert overall(outcomes) == Verdict.ALLOWED and overall([]) == Verdict.CLEAN


@pytest.mark.parametrize("text, where", [
    ('[[rule]]\nname="x"\nverdict="maybe"\n', r"bad\.toml: rule\[0\]\.verdict"),
    ('[[rule]]\nname="x"\nhash_max_distnce=3\n', r"rule\[0\]\.hash_max_distnce"),
    ('[[rule]]\nverdict="review"\n', r"rule\[0\]\.name"),
    ('[[rule]\nname="x"', "not valid TOML"),
    ('[[rule]]\nname="x"\nhash_max_distance=99\n', r"rule\[0\]\.hash_max_distance"),
    ('[[rule]]\nname="x"\nmin_confidence=1.5\n', r"rule\[0\]\.min_confidence"),
    ('[[rule]]\nname="x"\n[[rule.corroborated]]\nhash_max_distance=9\n',
     r"rule\[0\]\.corroborated\[0\]: .*at least two kinds"),
    ('[[rule]]\nname="x"\n[[rule.corroborated]]\nhash_max_distance=9\nlocal_min_inlier=6\n',
     r"rule\[0\]\.corroborated\[0\]\.local_min_inlier"),
])
def test_invalid_rule_files(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(RuleError, match=where):
        load_rules(tmp_path)


def test_crop_placement_threshold(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('[[rule]]\nname="copy"\ncrop_min_agreement=0.9\n')
    rs = RuleSet(load_rules(tmp_path))

    def placed(agreement: float, inliers: int | None = None) -> Match:
        hit = Hit("local", 1, 0.45, inliers=inliers, agreement=agreement)
        return Match(1, "local", 0.45, (hit,))

    assert rs.judge(placed(0.92), "a", "x.jpg").rule == "copy"
    assert rs.judge(placed(0.85), "a", "x.jpg") is None
    # a homography's dense agreement is not a crop placement's
    assert rs.judge(placed(0.95, inliers=6), "a", "x.jpg") is None
    assert rs.judge(_match(distance=20, agreement=1.0), "a", "x.jpg") is None


def test_one_confidence_threshold(tmp_path: Path) -> None:
    """``min_confidence`` asks for the match's calibrated score (``monitor.matching.confidence``)
    alone, whatever stages gave it."""
    (tmp_path / "r.toml").write_text('[[rule]]\nname="sure"\nmin_confidence=0.95\n')
    rs = RuleSet(load_rules(tmp_path))
    hit = Hit("local", 1, 0.5, inliers=7, agreement=0.9)
    assert rs.judge(Match(1, "local", 0.96, (hit,)), "a", "x.jpg").rule == "sure"
    assert rs.judge(Match(1, "local", 0.94, (hit,)), "a", "x.jpg") is None


def _overlapping(query: float | None, target: float | None, inliers: int = 40,
                 distance: int | None = None) -> Match:
    """A match whose local hit (``inliers``) measured the overlap both ways."""
    hits = [Hit("local", 1, 0.9, inliers=inliers, region=(0, 0, 10, 10), query_overlap=query,
                target_overlap=target)]
    if distance is not None:
        hits.append(Hit("hash", 1, 0.8, distance=distance))
    return Match(1, "local", 0.9, tuple(hits))


def test_overlap_constrains_the_evidence(tmp_path: Path) -> None:
    """A shared background matches a small part of the protected image: the violation rule
    asks for half of it, so such a match falls through to the review rule."""
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nlocal_min_inliers=10\nmin_target_overlap=0.5\n'
        '[[rule.corroborated]]\nhash_max_distance=10\nlocal_min_inliers=6\n'
        '[[rule]]\nname="partial"\nverdict="review"\nlocal_min_inliers=10\n'
        'min_query_overlap=0.05\n')
    rs = RuleSet(load_rules(tmp_path))
    assert rs.judge(_overlapping(0.3, 0.8), "a", "x.jpg").rule == "copy"
    assert rs.judge(_overlapping(0.3, 0.5), "a", "x.jpg").rule == "copy"
    small = rs.judge(_overlapping(0.3, 0.2), "a", "x.jpg")
    assert small.rule == "partial" and small.verdict == Verdict.REVIEW
    # the constraint is ANDed with the evidence, it is none itself
    assert rs.judge(_overlapping(0.9, 1.0, inliers=8), "a", "x.jpg") is None
    # ... and with a corroborated table's (7 inliers and a pHash 8 bits off)
    assert rs.judge(_overlapping(0.9, 1.0, inliers=7, distance=8), "a", "x.jpg").rule == "copy"
    assert rs.judge(_overlapping(0.9, 0.2, inliers=7, distance=8), "a", "x.jpg") is None
    # an unknown overlap meets no constraint; a tiny share of the found image neither
    assert rs.judge(_overlapping(None, None), "a", "x.jpg") is None
    assert rs.judge(_overlapping(0.01, 0.2), "a", "x.jpg") is None


def test_overlap_in_a_corroborated_table(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        '[[rule]]\nname="copy"\nlocal_min_inliers=30\n'
        '[[rule.corroborated]]\nhash_max_distance=10\nlocal_min_inliers=6\n'
        'min_query_overlap=0.5\n')
    rs = RuleSet(load_rules(tmp_path))
    assert rs.judge(_overlapping(0.6, 0.1, inliers=7, distance=8), "a", "x.jpg").rule == "copy"
    assert rs.judge(_overlapping(0.4, 1.0, inliers=7, distance=8), "a", "x.jpg") is None
    # the table's constraint does not narrow the rule's own thresholds
    assert rs.judge(_overlapping(0.1, 0.1, inliers=40), "a", "x.jpg").rule == "copy"


@pytest.mark.parametrize("text, where", [
    ('[[rule]]\nname="x"\nmin_target_overlap=0.5\n', r"rule\[0\]: .*at least one threshold"),
    ('[[rule]]\nname="x"\nmin_query_overlap=0.2\nallow_domains=["a.example"]\n',
     r"rule\[0\]: .*at least one threshold"),
    ('[[rule]]\nname="x"\n[[rule.corroborated]]\nhash_max_distance=9\nmin_target_overlap=0.5\n',
     r"rule\[0\]\.corroborated\[0\]: .*at least two kinds"),
    ('[[rule]]\nname="x"\nmin_confidence=0.5\nmin_target_overlap=1.5\n',
     r"rule\[0\]\.min_target_overlap"),
])
def test_overlap_alone_is_refused(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(RuleError, match=where):
        load_rules(tmp_path)
    rules = load_rules(DEFAULTS)  # the shipped rules carry no overlap constraint
    assert all(r.min_query_overlap is None and r.min_target_overlap is None for r in rules)


def test_rule_with_nothing_to_decide_is_refused(tmp_path: Path) -> None:
    """A rule with no threshold, corroboration or allow-list could never apply: refused
    with the file named, instead of silently never flagging."""
    (tmp_path / "a.toml").write_text('[[rule]]\nname = "empty"\nverdict = "violation"\n',
                                     encoding="utf-8")
    with pytest.raises(RuleError, match="sets no threshold"):
        load_rules(tmp_path)
    (tmp_path / "a.toml").write_text('[[rule]]\nname = "partner"\n'
                                     'allow_domains = ["partner.example"]\n', encoding="utf-8")
    assert load_rules(tmp_path)[0].is_allow_list()
