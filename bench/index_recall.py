"""Retrieval-tier scale benchmark: :class:`DenseIndex` and :class:`BinaryIndex` at N images.

``python -m bench.index_recall --n 1000000 [--queries 1000] [--json]`` builds the SSCD
index at N vectors and the pHash index at 16·N codes through the product API (``add``
everything, then ``train()``), and prints per index: the kind chosen, train and add
seconds, disk MB, RSS of a fresh process after ``load(mmap=True)`` (and after 200
searches), single-thread search p50/p99 and recall against exact search. Prints
figures only; asserts nothing.

Data: see :mod:`bench.index_data` (real corpus images, synthetic ones labelled as
such in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.index_data import (
    CACHE,
    CORPUS,
    copies,
    far_masks,
    flip_bits,
    mixtures,
    real_data,
    unit,
)

RADIUS = 12
"""Hamming radius of the hash stage (``HashStage.max_distance``)."""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--probe`` is the internal RSS-measuring subprocess)."""
    p = argparse.ArgumentParser(prog="python -m bench.index_recall", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[100_000],
                   help="gallery images: N SSCD vectors and 16·N pHash codes")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--nprobe", type=int, nargs="*", default=[],
                   help="also report recall and latency at these nprobe values (sweep)")
    p.add_argument("--only", choices=("dense", "binary"), default=None)
    p.add_argument("--factory", default=None, help="FAISS factory string of the dense IVF "
                   "index (DenseIndex factory=, e.g. 'IVF{nlist},SQfp16')")
    p.add_argument("--flat-max", type=int, default=None,
                   help="override flat_max of both indices (e.g. huge: flat at every size)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="FAISS threads for building and exact truth (searches use 1); use 1 "
                   "when other work shares the cores: OpenMP oversubscribed ran 2-3x slower")
    p.add_argument("--corpus", type=Path, default=CORPUS)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probe", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- measurement helpers ----------------------------------------------------------
def _ms(fn, items) -> tuple[float, float]:
    """p50 and p99 milliseconds of ``fn(item)`` over ``items`` (one warm-up call)."""
    fn(items[0])
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2 ** 20


def _status() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process in kB (``/proc/self/status``)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def probe(kind: str, path: Path) -> dict:
    """In a fresh process: RSS before and after ``load(mmap=True)`` and after 200 searches."""
    import faiss

    from monitor.matching.index.binary import BinaryIndex
    from monitor.matching.index.dense import DenseIndex

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    before, t0 = _status(), time.perf_counter()
    if kind == "dense":
        index = DenseIndex.load(path, "bench", None, mmap=True)
        loaded, load_ms = _status(), (time.perf_counter() - t0) * 1e3
        for q in unit(rng.standard_normal((200, index.dim), np.float32)):
            index.search(q[None, :], 10)
    else:
        index = BinaryIndex.load(path, "bench", mmap=True)
        loaded, load_ms = _status(), (time.perf_counter() - t0) * 1e3
        for q in rng.integers(0, 256, (200, 8), np.uint8):
            index.search(q, RADIUS)
    return {"before": before, "loaded": loaded, "searched": _status(), "load_ms": load_ms}


def rss_after_load(kind: str, path: Path) -> dict:
    """:func:`probe` run in a subprocess (JSON on its stdout)."""
    out = subprocess.run([sys.executable, "-m", "bench.index_recall", "--probe", kind,
                          str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(n)


# -- dense -------------------------------------------------------------------------
def bench_dense(n: int, args: argparse.Namespace, real: np.ndarray, tmp: Path) -> dict:
    """Build, save, reload and query a :class:`DenseIndex` of ``n`` vectors."""
    import faiss

    from monitor.matching.index.dense import FLAT_MAX, DenseIndex

    rng = np.random.default_rng(args.seed)
    n_real = min(len(real), n)
    x = np.empty((n, real.shape[1]), np.float32)
    x[:n_real], x[n_real:] = real[:n_real], mixtures(real, n - n_real, rng)
    index = DenseIndex(x.shape[1], flat_max=args.flat_max or FLAT_MAX, factory=args.factory)
    _threads(args.threads)
    t0 = time.perf_counter()
    index.add(np.arange(n), x)
    bulk_s = time.perf_counter() - t0
    train_s = index.train() if n > index.flat_max else 0.0
    sets = {"copy": copies(x[rng.choice(n, args.queries, replace=False)], 0.8, rng),
            "unrelated": mixtures(real, args.queries, rng)}
    truth = {k: faiss.knn(q, x, 10, faiss.METRIC_INNER_PRODUCT)[1] for k, q in sets.items()}
    del x
    _threads(1)

    def measure(index: DenseIndex) -> dict:
        out = {}
        for name, q in sets.items():
            got = [[g for g, _ in row] for row in index.search(q, 10)]
            hit = [len(set(r) & set(t.tolist())) / 10 for r, t in zip(got, truth[name],
                                                                         strict=True)]
            top1 = [bool(r) and r[0] == t[0] for r, t in zip(got, truth[name], strict=True)]
            p50, p99 = _ms(lambda v: index.search(v[None, :], 10), q)
            out[name] = {"recall@10": float(np.mean(hit)), "top1": float(np.mean(top1)),
                         "p50_ms": p50, "p99_ms": p99}
        return out

    row = {"index": "dense", "n": n, "real": n_real, "synthetic": n - n_real,
           "bulk_add_s": bulk_s, "train_s": train_s}
    extra = mixtures(real, 1000, rng)
    return _finish(row, index, measure, args, tmp,
                   lambda i: index.add(np.array([n + i]), extra[i:i + 1]))


# -- binary ------------------------------------------------------------------------
def bench_binary(n: int, args: argparse.Namespace, real: np.ndarray, tmp: Path) -> dict:
    """Build, save, reload and query a :class:`BinaryIndex` of ``16·n`` codes."""
    import faiss

    from monitor.matching.index.binary import FLAT_MAX, BinaryIndex

    rng = np.random.default_rng(args.seed + 1)
    n_real, per = min(len(real), n), real.shape[1]
    codes = np.empty((n, per, real.shape[2]), np.uint8)
    codes[:n_real] = real[:n_real]
    base = rng.integers(0, len(real), n - n_real)
    codes[n_real:] = real[base] ^ far_masks(n - n_real, rng)[:, None, :]
    codes = codes.reshape(-1, real.shape[2])
    ids = np.repeat(np.arange(n), per)
    index = BinaryIndex(real.shape[2], flat_max=args.flat_max or FLAT_MAX)
    _threads(args.threads)
    t0 = time.perf_counter()
    index.add(ids, codes)
    bulk_s = time.perf_counter() - t0
    train_s = index.train() if len(codes) > index.flat_max else 0.0
    src = rng.choice(n_real, args.queries)
    q = flip_bits(real[src, 0], rng.integers(0, RADIUS + 1, args.queries), rng)
    q2 = np.stack([q, flip_bits(real[src, 8], rng.integers(0, RADIUS + 1, len(q)), rng)], 1)
    exact = faiss.IndexBinaryFlat(8 * real.shape[2])
    exact.add(codes)
    lims, _, lab = exact.range_search(q, RADIUS + 1)
    truth = [set((ids[lab[lims[i]:lims[i + 1]]]).tolist()) for i in range(len(q))]
    del exact, codes
    _threads(1)

    def measure(index: BinaryIndex) -> dict:
        got = [{g for g, _ in index.search(c, RADIUS)} for c in q]
        found = sum(len(g & t) for g, t in zip(got, truth, strict=True))
        p50, p99 = _ms(lambda c: index.search(c, RADIUS), q)
        m50, m99 = _ms(lambda c: index.search_many(c, RADIUS, 8), q2)
        return {"recall": found / max(1, sum(map(len, truth))),
                "planted": float(np.mean([int(s) in g for s, g in zip(src, got, strict=True)])),
                "p50_ms": p50, "p99_ms": p99, "many2_p50_ms": m50, "many2_p99_ms": m99}

    row = {"index": "binary", "n": n, "codes": len(ids), "real": n_real,
           "synthetic": n - n_real, "bulk_add_s": bulk_s, "train_s": train_s,
           "truth_ids_per_query": float(np.mean([len(t) for t in truth]))}
    extra = real[rng.integers(0, len(real), 1000)] ^ far_masks(1000, rng)[:, None, :]
    return _finish(row, index, measure, args, tmp,
                   lambda i: index.add(np.full(per, n + i), extra[i]))


def _finish(row: dict, index, measure, args: argparse.Namespace, tmp: Path, add_one) -> dict:
    """Fill ``row``: kind, recall and latency (default and ``--nprobe`` sweep), 1,000
    single-image adds, one removal, save, disk size and the fresh-process RSS."""
    row.update(kind=index.kind, nprobe=index.nprobe, **measure(index), sweep=[])
    for nprobe in args.nprobe if index.kind != "flat" else []:
        index.nprobe = nprobe
        row["sweep"].append({"nprobe": nprobe, **measure(index)})
    t0 = time.perf_counter()
    for i in range(1000):
        add_one(i)
    row["add_one_ms"] = time.perf_counter() - t0  # seconds for 1000 = ms for one
    index.ids()  # merge the ids added since (once), so the removal below is timed alone
    t0 = time.perf_counter()
    index.remove([row["n"] + 1])
    row["remove_one_ms"] = (time.perf_counter() - t0) * 1e3
    path = tmp / f"{row['index']}.npz"
    t0 = time.perf_counter()
    index.save(path, "bench")
    row.update(save_s=time.perf_counter() - t0, disk_mb=_disk_mb(path),
               memory_mb=index.memory_bytes / 2 ** 20, rss=rss_after_load(row["index"], path))
    return row


# -- report ------------------------------------------------------------------------
def _fmt(row: dict) -> str:
    rss = row["rss"]
    mb = {k: rss[k]["VmRSS"] / 1024 for k in ("before", "loaded", "searched")}
    codes = f", {row['codes']:,} codes" if "codes" in row else ""
    head = (f"{row['index']:6} N={row['n']:,} ({row['real']:,} real + {row['synthetic']:,} "
            f"synthetic images{codes})"
            f"\n  kind {row['kind']}  nprobe {row['nprobe']}  bulk add {row['bulk_add_s']:.1f} s"
            f"  train {row['train_s']:.1f} s  add one image {row['add_one_ms']:.3f} ms"
            f"  remove one {row['remove_one_ms']:.1f} ms  save {row['save_s']:.1f} s"
            f"\n  disk {row['disk_mb']:.1f} MB  memory_bytes {row['memory_mb']:.1f} MB"
            f"  fresh process RSS: {mb['before']:.0f} MB before load, {mb['loaded']:.0f} MB "
            f"after load(mmap=True) ({rss['load_ms']:.1f} ms), {mb['searched']:.0f} MB after "
            f"200 searches (of which file-backed {rss['searched']['RssFile'] / 1024:.0f} MB)")
    lines = [head]
    for r in [{"nprobe": row["nprobe"], **row}, *row["sweep"]]:
        if row["index"] == "dense":
            lines.append(f"  nprobe {r['nprobe']}: " + "; ".join(
                f"{k} queries recall@10 {r[k]['recall@10']:.4f} top-1 {r[k]['top1']:.4f} "
                f"p50 {r[k]['p50_ms']:.2f} ms p99 {r[k]['p99_ms']:.2f} ms"
                for k in ("copy", "unrelated")))
        else:
            lines.append(f"  nprobe {r['nprobe']}: range ≤{RADIUS} bits recall {r['recall']:.4f}"
                         f" (planted {r['planted']:.4f}; {row['truth_ids_per_query']:.1f} ids"
                         f"/query) search p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms;"
                         f" search_many(2 codes, limit 8) p50 {r['many2_p50_ms']:.3f}"
                         f" p99 {r['many2_p99_ms']:.3f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--probe``, the RSS probe) and print the figures."""
    args = parse(argv)
    if args.probe:
        print(json.dumps(probe(args.probe[0], Path(args.probe[1]))))
        return 0
    phash, sscd = real_data(args.corpus, args.cache)
    if not len(sscd):
        print("no SSCD model: dense vectors are all synthetic Gaussian", file=sys.stderr)
        sscd = unit(np.random.default_rng(args.seed).standard_normal((2000, 512), np.float32))
    rows = []
    with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
        for n in args.n:
            for kind, fn, real in (("dense", bench_dense, sscd), ("binary", bench_binary, phash)):
                if args.only in (None, kind):
                    rows.append(fn(n, args, real, Path(tmp)))
                    if not args.json:
                        print(_fmt(rows[-1]), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
