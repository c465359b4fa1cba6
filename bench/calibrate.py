"""Fit the product's match confidence (:mod:`monitor.matching.confidence`), test it on
other splits.

    python -m bench.accuracy --seed 5 --evidence /tmp/ev-5.jsonl ...   # per split
    python -m bench.calibrate --fit /tmp/ev-5.jsonl --test /tmp/ev-11.jsonl /tmp/ev-23.jsonl

Every (query, gallery image) match of the fit split is one example (1: the query is an
edited copy of that gallery image; 0: any other match, every match of a distractor),
described by :func:`monitor.matching.confidence.features`. A logistic regression
(scikit-learn ``LogisticRegression``, L2) is fitted, and then, on every split and in
the same run as the current coefficients and the best single hit's score (the
product before calibration):

- recall at the threshold where at most ``--fpr`` of distractors are flagged
  (swept on that split, as :mod:`bench.accuracy` does), and µAP;
- recall and measured FPR at one fixed threshold: the fit split's, so the test
  splits show how the operating point carries over to queries the fit never saw.

The fitted coefficients are printed as Python to paste into ``monitor/matching/confidence.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from bench import metrics, report
from monitor.matching import confidence
from monitor.types import Hit

Scorer = Callable[[Sequence[Hit]], float]


def load(path: Path) -> list[dict]:
    """Queries of one evidence file (``bench.accuracy --evidence``), hits as :class:`Hit`."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        for m in q["matches"]:
            m["hits"] = [Hit(stage=h["stage"], gallery_id=m["gid"], score=h["score"],
                             distance=h["distance"], cosine=h["cosine"],
                             inliers=h["inliers"], agreement=h["agreement"],
                             region=(0, 0, 1, 1) if h["region"] else None)
                         for h in m["hits"]]
        out.append(q)
    return out


def examples(queries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(M, F) float64`` and labels ``(M,) int`` of every match of ``queries``."""
    x = [confidence.features(m["hits"]) for q in queries for m in q["matches"]]
    y = [int(m["gid"] == q["truth"]) for q in queries for m in q["matches"]]
    return np.array(x).reshape(-1, len(confidence.FEATURES)), np.array(y)


def fit(queries: list[dict], c: float) -> tuple[float, tuple[float, ...]]:
    """Intercept and coefficients of a logistic regression on ``queries``' matches."""
    from sklearn.linear_model import LogisticRegression

    x, y = examples(queries)
    model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
    return float(model.intercept_[0]), tuple(float(w) for w in model.coef_[0])


def single_hit(hits: Sequence[Hit]) -> float:
    """The product's score before calibration: the best hit's (inliers break ties)."""
    inliers = max((h.inliers or 0 for h in hits), default=0)
    return max(h.score for h in hits) + min(inliers, 9999) * 1e-10


def logistic(intercept: float, coef: Sequence[float]) -> Scorer:
    """:func:`monitor.matching.confidence.confidence` with the given model."""
    return partial(confidence.confidence, intercept=intercept, coefficients=coef)


def evaluate(queries: list[dict], scorer: Scorer, fpr: float,
             fixed: float | None) -> dict:
    """Swept recall and µAP, and recall and FPR at threshold ``fixed`` (if given)."""
    tops, correct_top, pooled, pooled_ok = [], [], [], []
    for q in queries:
        scored = sorted(((scorer(m["hits"]), m["gid"]) for m in q["matches"]), reverse=True)
        tops.append(scored[0][0] if scored else -1.0)
        correct_top.append(bool(scored) and scored[0][1] == q["truth"])
        pooled += [s for s, _ in scored]
        pooled_ok += [g == q["truth"] for _, g in scored]
    pos = [i for i, q in enumerate(queries) if q["truth"] >= 0]
    neg = [i for i, q in enumerate(queries) if q["truth"] < 0]
    tau = metrics.threshold_at_fpr([tops[i] for i in neg], fpr)
    row = {"tau": tau, "uap": metrics.micro_ap(pooled, pooled_ok, len(pos)),
           "recall": metrics.recall_at([tops[i] for i in pos], [correct_top[i] for i in pos],
                                       tau)}
    if fixed is not None:
        row["fixed_recall"] = metrics.recall_at([tops[i] for i in pos],
                                                [correct_top[i] for i in pos], fixed)
        row["fixed_fpr"] = metrics.false_positive_rate([tops[i] for i in neg], fixed)
        row["fixed_flagged"] = sum(tops[i] > fixed for i in neg)
        row["distractors"] = len(neg)
    return row


def families(queries: list[dict], scorer: Scorer, tau: float) -> dict[str, float]:
    """Recall per edit family at threshold ``tau`` (top match right and above ``tau``)."""
    found: dict[str, list[bool]] = {}
    for q in queries:
        if q["truth"] >= 0:
            top = max(((scorer(m["hits"]), m["gid"]) for m in q["matches"]), default=None)
            found.setdefault(q["family"], []).append(
                top is not None and top[1] == q["truth"] and top[0] > tau)
    return {f: sum(v) / len(v) for f, v in found.items()}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.calibrate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--fit", type=Path, required=True, help="evidence file to fit on")
    p.add_argument("--test", type=Path, nargs="*", default=[], help="evidence files to test on")
    p.add_argument("--fpr", type=float, default=1e-3)
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (scikit-learn C)")
    p.add_argument("--thresholds", type=float, nargs="*", default=[0.25, 0.5, 0.9],
                   help="fixed confidence thresholds to report on every split")
    p.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.calibrate " + shlex.join(sys.argv[1:] if argv is None else argv)
    splits = {p: load(p) for p in [args.fit, *args.test]}
    train = splits[args.fit]
    intercept, coef = fit(train, args.c)
    shipped = logistic(confidence.INTERCEPT, confidence.COEFFICIENTS)
    scorers = {"best single hit (before)": single_hit, "confidence (shipped)": shipped,
               "confidence (this fit)": logistic(intercept, coef)}
    lines = ["| scorer | split | swept recall | µAP | recall at the fit split's τ | flagged |",
             "|---|---|---|---|---|---|"]
    for name, scorer in scorers.items():
        tau = evaluate(train, scorer, args.fpr, None)["tau"]
        for path, queries in splits.items():
            r = evaluate(queries, scorer, args.fpr, tau)
            lines.append(f"| {name} | {_tag(path, args.fit)} | {r['recall']:.3f} | "
                         f"{r['uap']:.3f} | {r['fixed_recall']:.3f} (τ {tau:.4f}) | "
                         f"{r['fixed_flagged']} of {r['distractors']} |")
    points = ["| min_confidence | split | recall | lowest family | flagged distractors "
              "(FPR, 95 % upper bound) |",
              "|---|---|---|---|---|"]
    for t in args.thresholds:
        for path, queries in splits.items():
            r, fam = evaluate(queries, shipped, args.fpr, t), families(queries, shipped, t)
            low = min(fam, key=fam.get)
            upper = metrics.fpr_upper_bound(r["fixed_flagged"], r["distractors"])
            points.append(f"| {t:g} | {_tag(path, args.fit)} | {r['fixed_recall']:.3f} | "
                          f"{low} {fam[low]:.3f} | {r['fixed_flagged']} of "
                          f"{r['distractors']} ({100 * r['fixed_fpr']:.2f} %, "
                          f"≤ {100 * upper:.2f} %) |")
    coefs = "\n".join(f"| {n} | {w0:+.3f} | {w1:+.3f} |" for n, w0, w1 in zip(
        ("intercept", *confidence.FEATURES), (confidence.INTERCEPT, *confidence.COEFFICIENTS),
        (intercept, *coef), strict=True))
    body = BODY.format(command=command, date=dt.datetime.now().astimezone().isoformat(
        timespec="minutes"), machine=report.machine(), fit=args.fit, n=len(train),
        m=sum(len(q["matches"]) for q in train), fpr=f"{100 * args.fpr:g}",
        table="\n".join(lines), points="\n".join(points), coefs=coefs)
    print(body)
    report.write_section(args.out, body, START, END)
    print(f"wrote {args.out}")
    return 0


def _tag(path: Path, fitted: Path) -> str:
    return f"`{path.name}` (fit)" if path == fitted else f"`{path.name}` (held out)"


START, END = "<!-- calibration:start -->", "<!-- calibration:end -->"
BODY = """## Match confidence: one score for all the evidence (`bench/calibrate.py`)

- Command: `{command}` (from the repository root), on the `--evidence` files of
  `python -m bench.accuracy --gallery 300 --distractors 3000 --seed S --evidence ...`
  (S = 5, 11, 23; the accuracy sections give the exact commands).
- Date: {date}. Machine: {machine}.
- Fitted on `{fit}`: {n} queries, {m} (query, gallery image) matches; scikit-learn
  `LogisticRegression` over `monitor.matching.confidence.FEATURES`. The other splits are held out
  (their galleries and distractors differ; images can recur across splits).
- Swept recall: the top match must be right and above the threshold at which at most
  {fpr} % of that split's distractors are flagged (as in the accuracy section); "recall
  at the fit split's τ" keeps the fit split's threshold, so a held-out split shows how
  the operating point carries over, and how many of its distractors it flags.

{table}

Operating points of the shipped confidence (a rule with `min_confidence` alone):

{points}

Coefficients, shipped and refitted in this run:

| feature | shipped | this fit |
|---|---|---|
{coefs}
"""


if __name__ == "__main__":
    raise SystemExit(main())
