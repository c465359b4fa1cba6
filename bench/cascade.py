"""Choose the cascade's thresholds from benchmark evidence (``bench.accuracy --evidence``).

    python -m bench.cascade --fit /tmp/ev-5.jsonl [--test /tmp/ev-11.jsonl ...]

The cascade (:mod:`monitor.matching.retrieval`) verifies a gallery image only when its
retrieval evidence (pHash hits before the dense check, SSCD hits with structure
agreement) reaches a calibrated confidence, or an SSCD hit reaches a normalised
similarity; a candidate with no such image stops after retrieval. From evidence files
of runs with every candidate verified (``retrieval.cascade_min_confidence = 0``, or a
build before the cascade), this prints per pair of thresholds: the copies the default
rule finds that the cascade would lose (their truth image not passing) and the share
of unrelated candidates that would still be verified. Pick on ``--fit``; read the
held-out ``--test`` files to see it carry over.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bench.calibrate import load
from monitor.matching import confidence
from monitor.matching.rules import load_rules

CONFIDENCES = (0.005, 0.007, 0.01, 0.015, 0.02)
NORMALISED = (0.03, 0.05, 0.08, 0.1, 0.15, 9.0)
"""Thresholds swept (9.0: the normalised-similarity test off)."""


def passing(match: dict, min_conf: float, min_norm: float) -> bool:
    """Whether one match's retrieval evidence passes the two thresholds."""
    ret = [replace(h, agreement=None) for h in match["hits"]
           if (h.stage == "hash" and h.region is None) or h.stage == "descriptor"]
    if not ret:
        return False
    return (confidence.confidence(ret) >= min_conf
            or any(h.normalised is not None and h.normalised >= min_norm for h in ret))


def sweep(path: Path, tau: float) -> list[str]:
    """Lines of the table for one evidence file; ``tau`` is the default rule's
    ``min_confidence``."""
    queries = load(path)
    found, unrelated = [], []
    for q in queries:
        scored = [(confidence.confidence(m["hits"]), m) for m in q["matches"]]
        best = max((s for s in scored if s[0] >= tau), key=lambda s: s[0], default=None)
        if q["truth"] >= 0 and best is not None and best[1]["gid"] == q["truth"]:
            found.append(q)
        elif q["truth"] < 0:
            unrelated.append(q)
    out = [f"{path}: {len(found)} copies found by the default rule, {len(unrelated)} unrelated",
           "| confidence ≥ | or normalised ≥ | copies lost | unrelated verified |",
           "|---|---|---|---|"]
    for c in CONFIDENCES:
        for n in NORMALISED:
            lost = sum(not any(passing(m, c, n) for m in q["matches"] if m["gid"] == q["truth"])
                       for q in found)
            kept = sum(any(passing(m, c, n) for m in q["matches"]) for q in unrelated)
            norm = "off" if n > 1 else f"{n:g}"
            out.append(f"| {c:g} | {norm} | {lost} ({100 * lost / max(len(found), 1):.1f} %) | "
                       f"{100 * kept / max(len(unrelated), 1):.1f} % |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cascade", description=__doc__.split("\n")[0])
    p.add_argument("--fit", type=Path, required=True)
    p.add_argument("--test", type=Path, nargs="*", default=[])
    args = p.parse_args(argv)
    rules = load_rules(Path(confidence.__file__).parent.parent / "defaults")
    tau = next(r.min_confidence for r in rules if r.name == "copy")
    for path in [args.fit, *args.test]:
        print("\n".join(sweep(path, tau)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
