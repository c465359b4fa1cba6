"""Speed benchmark: per-stage throughput, gallery lookup as the gallery grows, memory.

    python -m bench.speed [--corpus DIR] [--n N] [--out bench/RESULTS.md]

Prints markdown tables and writes them between the speed markers of ``--out``
(other sections untouched). Every figure is a ratio to a baseline measured in
the same run: plain ``imagehash.phash(Image.open(path))`` on the same files for
the image stages, the raw open_clip forward pass for CLIP, flat search for the
index alternatives. FAISS and OpenCV run on one thread each (as the product's
engine sets them; the checker parallelises across candidates).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import speed_index as ix
from bench import speed_stages as st
from bench.speed_report import fmt, md_table, write_section

DEFAULT_CORPUS = Path("/tmp/monitor-corpus")


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def _stage_rows(label: str, t: dict, extra: dict[str, str]) -> list[list[str]]:
    base = t["baseline"].per_second
    return [[label, extra.get(k, k), fmt(v.per_second), fmt(v.pct_ms(50), 2),
             fmt(v.pct_ms(95), 2),
             f"**{v.per_second / base:.2f}×**" if k != "baseline" else "1.00×"]
            for k, v in t.items()]


HASH_NAMES = {"baseline": "(a) baseline `imagehash.phash(Image.open(path))`",
              "hash_only": "(b) product, hash alone: `decode_file(work_side=512)` + "
                           "`HashStage.compute`",
              "full": "(c) product, full decode: `decode_file(work_side=1024)` + "
                      "`HashStage.compute`",
              "decode_full": "    (decode at work_side 1024 alone, for reference)",
              "decode_hash_only": "    (decode at work_side 512 alone, for reference)",
              "decompress": "    (`Image.open(path).load()` alone, JPEG via `draft(512)` as in "
                            "(b): the decompression (b) does, for reference)"}


def _where_the_time_goes(t: dict, n: int, what: str = "the sample") -> str:
    """Mean ms per file of (b), split by the reference variants, and the ratio bound."""
    def ms(k: str) -> float:
        return t[k].latencies.mean() * 1e3

    load, dec, total = ms("decompress"), ms("decode_hash_only"), ms("hash_only")
    return (f"Where (b)'s time goes on {what} ({n} files), mean ms per file (differences of "
            f"the variants above): opening and decompressing as (b) does {load:.2f}, the rest "
            f"of `decode_file` (reading, colour normalisation, alpha onto white, reduction, "
            f"sha256) {dec - load:.2f}, `HashStage.compute` (trim box, reduced copies, "
            f"2 pHashes) {total - dec:.2f}; total {total:.2f} against (a)'s "
            f"{ms('baseline'):.2f}. That decompression alone runs at "
            f"**{ms('baseline') / load:.2f}×** (a): the most (b) could reach were all else "
            f"free (PNG has no reduced decode; JPEG's `draft` is (b)'s only saving on it).")


def _pool_rows(label: str, pools: dict[int, dict[str, float]]) -> list[list[str]]:
    return [[label, n, fmt(p["baseline"]), fmt(p["hash_only"]),
             f"{p['hash_only'] / p['baseline']:.2f}×"] for n, p in pools.items()]


def stage_section(args, files: list[Path], jpegs: list[Path]) -> tuple[str, dict]:
    """Hash, local and CLIP tables; returns markdown and the local-index memory figures."""
    out, rows = [], []
    hashed = st.bench_hash(files, args.repeats, tuple(args.threads))
    rows += _stage_rows(f"corpus sample ({len(files)} files)", hashed["timings"], HASH_NAMES)
    by_fmt = {}
    suffix = np.array([p.suffix.lower().lstrip(".").replace("jpeg", "jpg") for p in files])
    for kind in sorted(set(suffix)):
        m = suffix == kind
        t = hashed["timings"]
        base = t["baseline"].latencies[m].sum()
        by_fmt[kind] = (int(m.sum()), base / t["hash_only"].latencies[m].sum(),
                        base / t["full"].latencies[m].sum())
    jpg = st.bench_hash(jpegs, args.repeats, tuple(args.threads)) if jpegs else None
    if jpg:
        rows += _stage_rows(f"corpus JPEGs ({len(jpegs)} files)", jpg["timings"], HASH_NAMES)
    gallery = st.sample(st.all_files, args.gallery, args.seed + 1, exclude=set(files))
    gallery = st.decodable(gallery)
    lstage, lindex, lmem = st.build_local_gallery(gallery)
    local_files = files[:args.local_n]
    lt = st.bench_local(local_files, lstage, lindex, args.repeats)
    rows += _stage_rows(f"corpus sample, first {len(local_files)} files", lt,
                        {"baseline": HASH_NAMES["baseline"],
                         "local": "(d) local stage: decode 1024 + SIFT + vote/verify "
                                  f"(+ region proposals on a miss) vs {len(gallery)}-image "
                                  "gallery"})
    out.append("### Per stage, decode included (candidates one after the other, one process)\n")
    out.append(md_table(["files", "variant", "candidates/s", "p50 ms", "p95 ms",
                         "ratio to (a)"], rows))
    t = hashed["timings"]
    out.append("\n" + _where_the_time_goes(t, len(files)))
    if jpg:
        out.append(_where_the_time_goes(jpg["timings"], len(jpegs), "JPEGs"))
    pool_rows = _pool_rows(f"corpus sample ({len(files)} files)", hashed["pools"])
    if jpg:
        pool_rows += _pool_rows(f"corpus JPEGs ({len(jpegs)} files)", jpg["pools"])
    if pool_rows:
        out.append("\nExtra (not the headline): the same two variants mapped over the files by "
                   "a thread pool, as the daemon's worker threads do (Pillow releases the GIL "
                   "while decoding and resizing); wall-clock candidates/s, best of "
                   f"{args.repeats}, the same pool size for both; the cores are shared with "
                   "other jobs.\n")
        out.append(md_table(["files", "threads", "(a) baseline candidates/s",
                             "(b) hash alone candidates/s", "(b) / (a)"], pool_rows))
    marginal = (t["full"].latencies - t["decode_full"].latencies).mean() * 1e3
    d = hashed["hash_only_vs_full"]
    out.append(
        "\nHash-stage ratio (b)/(a) by format in the sample: "
        + ", ".join(f"{k} ({n} files) {r1:.2f}× (full decode {r2:.2f}×)"
                    for k, (n, r1, r2) in by_fmt.items())
        + f". Marginal cost of `HashStage.compute` on an already decoded 1024-px working "
        f"copy (c − decode): {marginal:.2f} ms. Hash-alone vs full-decode hashes of the same "
        f"file: {100 * (d == 0).mean():.1f} % identical, mean {d.mean():.2f} bits, "
        f"max {d.max()} bits (gallery hashes come from the full decode).")
    if jpg:
        dj = jpg["hash_only_vs_full"]
        out.append(f"On the JPEGs: {100 * (dj == 0).mean():.1f} % identical, mean "
                   f"{dj.mean():.2f}, max {dj.max()} bits.")
    if args.clip_model != "none":
        clip = st.bench_clip(files, args.clip_model or None, args.clip_batch, args.clip_batches,
                             args.clip_repeats)
        crow = [[c["name"], "—", "—", "—", f"unavailable: {c['error']}"] if "error" in c else
                [c["name"], c["batch"], fmt(c["raw"]), fmt(c["stage"]),
                 f"**{c['stage'] / c['raw']:.3f}×**"] for c in clip]
        out.append("\n### (e) CLIP: raw `model.encode_image` on preprocessed batches vs "
                   "`ClipStage.compute` on decoded images (bench/clip_speed.py functions)\n")
        out.append(md_table(["model", "batch", "raw images/s", "stage images/s",
                             "stage / raw"], crow))
        out.append(f"\n{clip[0].get('images', 0)} corpus images per run (the sample cycled), "
                   f"best of {args.clip_repeats}; decoding not timed; torch default threads.")
    return "\n".join(out), {"local": lmem, "lstage": lstage, "lindex": lindex,
                            "queries": local_files[:20]}


def index_section(args, local: dict) -> str:
    """Binary and dense lookup vs gallery size, alternatives, memory, scaling."""
    out = []
    r = args.radius
    binrows = [ix.bench_binary(n, args.queries, r) for n in args.codes]
    out.append(f"\n### Hash lookup: `BinaryIndex.search` (FAISS `IndexBinaryFlat` range "
               f"search, radius {r} bits), {args.queries} queries, each with one planted code "
               f"at 0–{r} bits among random 64-bit codes\n")
    out.append(md_table(
        ["codes", "gallery images (8 dihedral codes each)", "ms / query", "planted found",
         "bytes / code"],
        [[f"{b['n']:,}", f"{b['n'] // 8:,}", fmt(b["ms"], 3), f"{100 * b['recall']:.1f} %",
          fmt(b["bytes_per_code"])] for b in binrows]))
    alt_n = args.alt_codes
    alts = ix.bench_binary_alternatives(alt_n, args.queries, r)
    hnsw_n = args.hnsw_codes
    if hnsw_n:
        h = [a for a in ix.bench_binary_alternatives(hnsw_n, args.queries, r, hnsw_only=True)]
        alts += [{**a, "name": a["name"] + f" — at {hnsw_n:,} codes"} for a in h]
    flat_ms = alts[0]["ms"]
    out.append(f"\n### Alternatives to flat search at {alt_n:,} codes (raw FAISS, same queries)\n")
    out.append(md_table(["index", "ms / query", "vs flat", "planted found", "build s"],
                        [[a["name"], fmt(a["ms"], 3), f"{a['ms'] / flat_ms:.2f}×",
                          f"{100 * a['recall']:.1f} %", fmt(a["build_s"], 2)] for a in alts]))
    dense = [ix.bench_dense(n, args.queries) for n in args.vectors]
    out.append("\n### CLIP lookup: `DenseIndex.search` (FAISS `IndexFlatIP`, top-10), 512-d "
               "unit vectors, one planted neighbour per query at cosine 0.9\n")
    out.append(md_table(["vectors", "ms / query", "planted in top-10", "bytes / vector"],
                        [[f"{d['n']:,}", fmt(d["ms"], 3), f"{100 * d['recall']:.1f} %",
                          fmt(d["bytes_per_vector"])] for d in dense]))
    ivf_n = args.vectors[-1]
    ivf = ix.bench_dense_ivf(ivf_n, args.queries)
    out.append(f"\nIVF alternative at {ivf_n:,} vectors (flat: {fmt(dense[-1]['ms'], 3)} ms):\n")
    out.append(md_table(["index", "ms / query", "vs flat", "planted in top-10", "build s"],
                        [[a["name"], fmt(a["ms"], 3), f"{a['ms'] / dense[-1]['ms']:.2f}×",
                          f"{100 * a['recall']:.1f} %", fmt(a["build_s"], 1)] for a in ivf]))
    lm = local["local"]
    big_bin, big_dense = binrows[-1], dense[-1]
    mem_rows = [
        ["hash (`BinaryIndex`, 8 codes/image)", f"{big_bin['n']:,} codes",
         fmt(8 * 1000 * big_bin["bytes_per_code"] / 1024, 1)],
        ["clip (`DenseIndex`, 512-d float32)", f"{big_dense['n']:,} vectors",
         fmt(1000 * big_dense["bytes_per_vector"] / 1024, 1)],
        ["local: features (descriptors, keypoints, thumbnails)",
         f"{lm['images']} real gallery images, {lm['descriptors']:,} descriptors",
         fmt(1000 * lm["features_bytes"] / lm["images"] / 1024, 1)],
        ["local: FAISS HNSW (RSS delta of the build)", "same",
         fmt(1000 * lm["hnsw_bytes"] / lm["images"] / 1024, 1)],
    ]
    out.append("\n### Memory per 1,000 gallery images (numpy by tracemalloc; flat FAISS copies "
               "exact, ntotal × code size; local HNSW by RSS delta)\n")
    out.append(md_table(["index", "measured on", "KiB per 1,000 images"], mem_rows))
    out.append(f"\nLocal gallery: {lm['images']} images, feature extraction "
               f"{fmt(lm['extract_s'], 1)} s, HNSW build {fmt(lm['build_s'], 1)} s.")
    scale = st.local_scaling(local["lstage"], local["lindex"], local["queries"], args.local_factors)
    out.append("\n### Scaling: local-stage vote search (HNSW k-NN + voting, both views) as the "
               "gallery grows (real gallery descriptors replicated with ±2 noise)\n")
    out.append(md_table(["gallery images", "descriptors", "ms / candidate", "HNSW build s"],
                        [[f"{s['images']:,}", f"{s['descriptors']:,}", fmt(s["ms"], 1),
                          fmt(s["build_s"], 1)] for s in scale]))
    return "\n".join(out), binrows, dense, alts, ivf, scale


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every benchmark, print and write the markdown."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--n", type=int, default=300, help="sampled corpus files for the stages")
    ap.add_argument("--jpeg-n", type=int, default=60, help="corpus JPEGs timed separately")
    ap.add_argument("--local-n", type=int, default=60, help="files for the local stage")
    ap.add_argument("--gallery", type=int, default=300, help="local-stage gallery images")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=_ints, default=_ints("1,2"),
                    help="thread-pool sizes for the extra hash throughput rows ('' = none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--radius", type=int, default=12, help="Hamming radius (settings default)")
    ap.add_argument("--codes", type=_ints, default=_ints("1000,10000,100000,1000000,10000000"))
    ap.add_argument("--alt-codes", type=int, default=1_000_000)
    ap.add_argument("--hnsw-codes", type=int, default=100_000,
                    help="IndexBinaryHNSW size (its build at 1M takes minutes); 0 skips")
    ap.add_argument("--vectors", type=_ints, default=_ints("1000,10000,100000"))
    ap.add_argument("--local-factors", type=_ints, default=_ints("1,4"))
    ap.add_argument("--clip-model", default="ViT-B-32", help="'' = tiny only, 'none' = skip")
    ap.add_argument("--clip-batch", type=int, default=32)
    ap.add_argument("--clip-batches", type=int, default=3)
    ap.add_argument("--clip-repeats", type=int, default=2)
    args = ap.parse_args(argv)

    import cv2
    import faiss

    from bench.report import machine

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    root = args.corpus / "images" if (args.corpus / "images").is_dir() else args.corpus
    st.all_files = st.corpus_files(root)
    files = st.decodable(st.sample(st.all_files, args.n, args.seed))
    jpegs = st.decodable(st.sample([p for p in st.all_files if p.suffix.lower() in
                                    (".jpg", ".jpeg")], args.jpeg_n, args.seed))
    command = "python -m bench.speed " + shlex.join(sys.argv[1:] if argv is None else argv)
    kinds = {}
    for p in files:
        kinds[p.suffix.lower()] = kinds.get(p.suffix.lower(), 0) + 1
    head = [
        "## Speed: stages, lookups, memory, scaling (`bench/speed.py`)\n",
        f"- Command: `{command.strip()}` (from the repository root)",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M+00:00')}",
        f"- Machine: {machine()} (shared with other jobs: compare ratios within this run, "
        "not absolute times)",
        f"- Corpus `{root}`: {len(st.all_files)} files; seeded sample of {len(files)} "
        f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}), plus {len(jpegs)} of its "
        "JPEGs timed separately. Each file keeps its fastest of "
        f"{args.repeats} interleaved runs per variant; candidates/s = files / sum of latencies.",
        "- FAISS and OpenCV on 1 thread (as `Engine` sets them).\n",
    ]
    stages_md, local = stage_section(args, files, jpegs)
    index_md = index_section(args, local)[0]
    body = "\n".join(head) + "\n" + stages_md + "\n" + index_md + "\n"
    print(body)
    write_section(args.out, body)


if __name__ == "__main__":
    main()
