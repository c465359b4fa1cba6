"""Fit the product's match confidence (:mod:`monitor.matching.confidence`), test it on
other splits.

    python -m bench.accuracy --seed 5 --evidence /tmp/ev-5.jsonl ...   # per split
    python -m bench.calibrate --fit /tmp/ev-5.jsonl --test /tmp/ev-11.jsonl /tmp/ev-23.jsonl

Every (query, gallery image) match of the fit split is one example (1: the query is an
edited copy of that gallery image; 0: any other match, every match of a distractor),
described by :func:`monitor.matching.confidence.features`. A logistic regression
(L2-penalised log-loss, every weight but ``hash_region``'s bounded at 0: :func:`fit`)
is fitted, and then, on every split and in the same run as the current coefficients and
the best single hit's score (the product before calibration):

- recall at the threshold where at most ``--fpr`` of distractors are flagged
  (swept on that split, as :mod:`bench.accuracy` does), and µAP;
- recall and measured FPR at one fixed threshold: the fit split's, so the test
  splits show how the operating point carries over to queries the fit never saw.

With ``--write FILE`` the fit is written as the confidence data file
(``monitor/defaults/confidence.json`` is the shipped one) with its provenance: the
command, the fit split, every split's swept recall, µAP and threshold at ``--fpr``, and
the operating point ``min_confidence``: the highest of the splits' thresholds, so the
default rule flags at most ``--fpr`` of distractors on every split measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
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
                             similarity=h.get("similarity"), normalised=h.get("normalised"),
                             structure=h.get("structure"),
                             region=(0, 0, 1, 1) if h["region"] else None)
                         for h in m["hits"]]
        out.append(q)
    return out


def examples(queries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(M, F) float64`` and labels ``(M,) int`` of every match of ``queries``."""
    x = [confidence.features(m["hits"]) for q in queries for m in q["matches"]]
    y = [int(m["gid"] == q["truth"]) for q in queries for m in q["matches"]]
    return np.array(x).reshape(-1, len(confidence.FEATURES)), np.array(y)


FREE_SIGN = ("hash_region",)
"""Features whose weight may be negative; every other weight is bounded at 0, so the
confidence never falls as evidence grows (closer pHash, more inliers, higher similarity)."""


def fit(queries: list[dict], c: float) -> tuple[float, tuple[float, ...]]:
    """Intercept and coefficients of a logistic regression on ``queries``' matches.

    L2-penalised log-loss (scikit-learn's objective with ``C = c``), minimised by SciPy's
    L-BFGS-B with every weight but :data:`FREE_SIGN`'s bounded below by 0.
    """
    from scipy.optimize import minimize

    x, y = examples(queries)
    xb = np.hstack([np.ones((len(x), 1)), x])
    sign = 2.0 * y - 1.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = sign * (xb @ w)
        value = c * np.logaddexp(0.0, -z).sum() + 0.5 * float(w[1:] @ w[1:])
        grad = -c * xb.T @ (sign / (1.0 + np.exp(z)))
        grad[1:] += w[1:]
        return value, grad

    bounds = [(None, None)] + [(None, None) if f in FREE_SIGN else (0.0, None)
                               for f in confidence.FEATURES]
    res = minimize(loss, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 5000})
    return float(res.x[0]), tuple(float(w) for w in res.x[1:])


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
    p.add_argument("--write", type=Path, default=None,
                   help="write this fit as a confidence data file (the shipped one is "
                        "monitor/defaults/confidence.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.calibrate " + shlex.join(sys.argv[1:] if argv is None else argv)
    splits = {p: load(p) for p in [args.fit, *args.test]}
    train = splits[args.fit]
    intercept, coef = fit(train, args.c)
    current = confidence.model()
    shipped = logistic(current.intercept, current.coefficients)
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
        ("intercept", *confidence.FEATURES), (current.intercept, *current.coefficients),
        (intercept, *coef), strict=True))
    body = BODY.format(command=command, date=dt.datetime.now().astimezone().isoformat(
        timespec="minutes"), machine=report.machine(), fit=args.fit, n=len(train),
        m=sum(len(q["matches"]) for q in train), fpr=f"{100 * args.fpr:g}",
        table="\n".join(lines), points="\n".join(points), coefs=coefs)
    print(body)
    if args.write:
        write_model(args.write, command, args, splits, intercept, coef)
        print(f"wrote {args.write}")
    report.write_section(args.out, body, START, END)
    print(f"wrote {args.out}")
    return 0


def write_model(path: Path, command: str, args: argparse.Namespace,
                splits: dict[Path, list[dict]], intercept: float,
                coef: tuple[float, ...]) -> dict:
    """Write the fit with its provenance and operating point (module docstring); returns
    what was written."""
    scorer = logistic(intercept, coef)
    figures = {}
    for split, queries in splits.items():
        r = evaluate(queries, scorer, args.fpr, None)
        figures[split.name] = {"role": "fit" if split == args.fit else "held out",
                               "queries": len(queries), "swept_recall": round(r["recall"], 4),
                               "uap": round(r["uap"], 4), "threshold": round(r["tau"], 4)}
    tau = math.ceil(1000 * max(f["threshold"] for f in figures.values())) / 1000
    for split, queries in splits.items():
        r = evaluate(queries, scorer, args.fpr, tau)
        figures[split.name].update(recall_at_min_confidence=round(r["fixed_recall"], 4),
                                   flagged_at_min_confidence=f"{r['fixed_flagged']} of "
                                                             f"{r['distractors']}")
    data = {"version": 2, "features": list(confidence.FEATURES),
            "intercept": round(intercept, 4), "coefficients": [round(w, 4) for w in coef],
            "min_confidence": tau, "fpr_target": args.fpr, "command": command,
            "date": dt.date.today().isoformat(), "fitted_on": args.fit.name,
            "regularisation_c": args.c, "splits": figures}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def _tag(path: Path, fitted: Path) -> str:
    return f"`{path.name}` (fit)" if path == fitted else f"`{path.name}` (held out)"


START, END = "<!-- calibration:start -->", "<!-- calibration:end -->"
BODY = """## Match confidence: one score for all the evidence (`bench/calibrate.py`)

- Command: `{command}` (from the repository root), on the `--evidence` files of
  `python -m bench.accuracy --seed S --evidence ...` runs (one per split; the accuracy
  sections give the exact commands and split sizes).
- Date: {date}. Machine: {machine}.
- Fitted on `{fit}`: {n} queries, {m} (query, gallery image) matches;
  L2-penalised logistic loss (C as given), weights bounded at 0 but `hash_region`'s (SciPy
  L-BFGS-B), over `monitor.matching.confidence.FEATURES`. The other splits are held out
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
