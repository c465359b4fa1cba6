"""Score the demo's scan against its answer key: copies found, unrelated images flagged.

Usage: monitor violations list --format jsonl | python scripts/demo_score.py truth.csv

``truth.csv`` (written by ``scripts/make_demo.py``) names, for every candidate, the gallery
image it copies (empty for an unrelated image) and the edit family. A copy counts as found
when a violation names that candidate *and* the right gallery image.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    truth = {r["candidate"]: r for r in csv.DictReader(Path(argv[1]).open(newline=""))}
    flagged: dict[str, set[str]] = {}
    for line in sys.stdin:
        if line.strip():
            v = json.loads(line)
            flagged.setdefault(Path(v["source"]).name, set()).add(Path(v["protected_path"]).name)
    copies = {c: r for c, r in truth.items() if r["gallery"]}
    found = {c for c, r in copies.items() if r["gallery"] in flagged.get(c, set())}
    unrelated = [c for c in truth if c not in copies]
    false = sorted(c for c in unrelated if c in flagged)
    missed = Counter(copies[c]["family"] for c in copies if c not in found)
    by_family = ", ".join(f"{f} {n}" for f, n in sorted(missed.items())) or "none"
    print(f"answer key: {len(found)} of {len(copies)} copies found (missed per edit family: "
          f"{by_family}); {len(false)} of {len(unrelated)} unrelated images flagged"
          + (f": {', '.join(false)}" if false else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
