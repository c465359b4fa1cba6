"""How the matching core scales with the gallery: memory, start-up, latency, recall.

    python -m bench.scale [--gallery 10000 --gallery 200000 ...] [--json]

Per gallery size N, a gallery is built on disk once (under ``--workdir``, reused by
later runs) and measured in a fresh process:

* **real part** (what is checked): ``--real`` protected images of the corpus split of
  :mod:`bench.dataset` (seed ``--seed``) with their edited copies (every edit family) as
  queries, and ``--unrelated`` edited images of other corpus files;
* **synthetic part** (the other N - real entries, labelled ``synthetic`` in the output):
  each borrows a real corpus image's signals, changed so it is no near-duplicate: its 16
  pHash codes with the same ``FLIP_BITS`` random bits flipped, its SSCD descriptor mixed
  with another's plus Gaussian noise (``MIX``, ``NOISE``) and L2-normalised, and the
  source image's local features and structure signature as its verification record
  (so the feature store holds real-sized records on disk).

Reported per size: RSS after start-up and peak, index files on disk, start-up time (load
plus the first result), retrieval p50/p99 (index look-ups alone, from the candidate's
codes and vectors), end-to-end ``Engine.match`` p50/p99 for copies and for unrelated
candidates (decode included), the copies' recall and unrelated images flagged by the
default rules, candidates stopped by the cascade and its SSCD floor, the index kinds chosen, and the
throughput relative to a pHash baseline (imagehash ``phash`` of the same files, decode
included) measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bench import dataset, runner
from bench.edits import FAMILIES

FLIP_BITS = 20
"""Bits flipped in a synthetic entry's pHash codes: farther than any copy is searched
(``hash.max_distance`` 12), as near as unrelated images often are."""

MIX, NOISE = 0.35, 0.03
"""A synthetic SSCD descriptor is ``normalise(a + MIX * b + N(0, NOISE²))`` of two real
descriptors ``a`` and ``b`` (per-dimension σ; a real unit vector has σ ≈ 0.044)."""

SOURCES = 400
"""Real corpus images (outside the checked split) the synthetic entries borrow from."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--gallery", type=int, action="append",
                   help="gallery size (repeatable; default 10000 and 200000)")
    p.add_argument("--real", type=int, default=50, help="real protected images checked")
    p.add_argument("--unrelated", type=int, default=200, help="unrelated queries")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--corpus", type=Path, default=Path("/tmp/monitor-corpus"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/monitor-bench-cache"))
    p.add_argument("--workdir", type=Path, default=Path("/tmp/monitor-scale"))
    p.add_argument("--rebuild", action="store_true", help="rebuild galleries already on disk")
    p.add_argument("--json", action="store_true", help="one JSON line per size")
    p.add_argument("--build-only", action="store_true", help="build the galleries, measure nothing")
    return p.parse_args(argv)


def _settings():
    from monitor.config import load_settings

    s = load_settings(Path("/nonexistent/config.toml"))
    return s.model_copy(update={"clip": s.clip.model_copy(update={"enabled": False})})


def split(args: argparse.Namespace) -> dataset.Split:
    """The checked part: real gallery, its copies and unrelated queries."""
    return dataset.build(args.corpus, args.cache, args.real, args.unrelated, args.seed,
                         list(FAMILIES), 2)


def _sources(args: argparse.Namespace, sp: dataset.Split, engine) -> list[tuple]:
    """``[(codes (16,8) uint8, descriptor (512,), features, signature)]`` of real corpus
    images outside the split's series (no sibling of a checked image), for the synthetic
    entries."""
    from bench.series import series
    from monitor.imaging.decode import decode_file
    from monitor.matching.stages.structure import gallery_signature

    corpus = dataset.corpus_files(args.corpus)
    groups = series(corpus, args.cache)  # series-disjoint, as the accuracy split is
    used = {groups.get(p, p) for p in set(sp.gallery) | {q.origin for q in sp.queries}}
    files = [f for group in corpus.values() for f in group
             if groups.get(str(f), str(f)) not in used]
    rng = np.random.default_rng(args.seed)
    out = []
    for i in rng.permutation(len(files)):
        if len(out) == SOURCES:
            break
        try:
            image = decode_file(files[i], runner.limits(engine.settings))
        except Exception:  # noqa: BLE001 - an undecodable corpus file is skipped
            continue
        out.append((engine.hash.compute_gallery(image), engine.describe([image])[0],
                    engine.local.compute(image, gallery=True), gallery_signature(image)))
    return out


def build(args: argparse.Namespace, n: int, sp: dataset.Split, folder: Path) -> dict:
    """Build a gallery of ``n`` entries under ``folder``; returns build figures."""
    from monitor.imaging.decode import decode_file
    from monitor.matching.engine import Engine, GalleryEntry
    from monitor.matching.index.features import FeatureStore
    from monitor.matching.index.local import LocalIndex

    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    engine = Engine(_settings())
    engine.local_index = LocalIndex(FeatureStore(folder / "features", engine.fingerprint()),
                                    vote=engine.wants_vote(n))
    for gid, path in enumerate(sp.gallery):
        image = decode_file(Path(path), runner.limits(engine.settings))
        engine.add(GalleryEntry(gid, engine.hash.compute_gallery(image), None,
                                lambda i=image: i, engine.describe([image])[0]), image)
    sources = _sources(args, sp, engine)
    rng = np.random.default_rng(n)
    real = len(sp.gallery)
    for start in range(real, n, 10_000):
        ids = np.arange(start, min(n, start + 10_000), dtype=np.int64)
        pick = rng.integers(0, len(sources), len(ids))
        other = rng.integers(0, len(sources), len(ids))
        masks = np.packbits(_flip_masks(rng, len(ids)), axis=1)  # (B, 8): one mask per entry
        codes = np.stack([sources[j][0] for j in pick]) ^ masks[:, None, :]
        engine.hash_index.add(np.repeat(ids, codes.shape[1]), codes.reshape(-1, 8))
        vec = np.stack([sources[j][1] for j in pick]) + MIX * np.stack(
            [sources[j][1] for j in other]) + rng.normal(0, NOISE, (len(ids), 512))
        vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
        engine.descriptor_index.add(ids, vec)
        for gid, j in zip(ids.tolist(), pick.tolist(), strict=True):
            engine.local_index.add(gid, sources[j][2], sources[j][3])
        engine.local_index.store.save()
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    engine.save(folder)
    (folder / "built.json").write_text(json.dumps({"gallery": n, "real": real}))
    return {"build_s": round(built, 1), "save_s": round(time.perf_counter() - t1, 1)}


def _flip_masks(rng: np.random.Generator, count: int) -> np.ndarray:
    """``(count, 64) bool`` with exactly :data:`FLIP_BITS` bits set per row."""
    masks = np.zeros((count, 64), bool)
    for row in masks:
        row[rng.choice(64, FLIP_BITS, replace=False)] = True
    return masks


def _disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def measure(folder: str, n: int, queries: list[tuple[str, int]]) -> dict:
    """In a fresh process: open the gallery, check every query, report the figures."""
    from bench.scale_measure import run

    return run(Path(folder), n, queries, _settings())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = args.gallery or [10_000, 200_000]
    sp = split(args)
    queries = [(q.path, q.truth) for q in sp.queries]
    for n in sizes:
        folder = args.workdir / f"g{n}-s{args.seed}-r{args.real}"
        built: dict = {}
        if args.rebuild or not (folder / "built.json").exists():
            built = build(args, n, sp, folder)
        if args.build_only:
            print(json.dumps({"gallery": n, "built": str(folder), **built}), flush=True)
            continue
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            row = pool.submit(measure, str(folder), n, queries).result()
        row = {"gallery": n, "real": len(sp.gallery), "synthetic": n - len(sp.gallery),
               "disk_mb": round(_disk_mb(folder), 1), **row, **built}
        print(json.dumps(row) if args.json else _lines(row), flush=True)
    return 0


def _lines(row: dict) -> str:
    return "\n".join(f"{k:>24}: {v}" for k, v in row.items()) + "\n"


if __name__ == "__main__":
    sys.exit(main())
