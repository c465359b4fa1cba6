"""Per-stage throughput of :mod:`bench.speed` on real files, decode included.

Every variant runs on the same files, interleaved file by file (see
:func:`bench.speed_report.time_interleaved`), with FAISS and OpenCV on one
thread each as :class:`monitor.matching.engine.Engine` sets them.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.speed_report import Timing, rss_bytes, time_interleaved, time_threads
from monitor.imaging.decode import DecodeLimits, decode_file
from monitor.matching.engine import HASH_ONLY_SIDE
from monitor.matching.stages.hash import HashStage

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
HASH_ONLY = DecodeLimits(work_side=HASH_ONLY_SIDE)
FULL = DecodeLimits(work_side=1024)


def corpus_files(root: Path) -> list[Path]:
    """Every image file under ``root`` (sorted, so seeded samples are reproducible)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def sample(files: list[Path], n: int, seed: int, exclude: set[Path] = frozenset()
           ) -> list[Path]:
    """``n`` files drawn without replacement (seeded), skipping ``exclude``."""
    pool = [p for p in files if p not in exclude]
    random.Random(seed).shuffle(pool)
    return pool[:n]


def decodable(files: list[Path]) -> list[Path]:
    """The files both the baseline and the product can decode (others are left out)."""
    import imagehash
    from PIL import Image

    ok = []
    for p in files:
        try:
            imagehash.phash(Image.open(p))
            decode_file(p, FULL)
            ok.append(p)
        except Exception:  # noqa: BLE001 - a benchmark input we cannot use
            continue
    return ok


def decompress(path: Path, side: int = HASH_ONLY_SIDE) -> None:
    """Open and decompress ``path`` as ``decode_file(work_side=side)`` does (JPEG through
    ``Image.draft``), and nothing else: for PNG, the decompression the baseline does too."""
    from PIL import Image

    im = Image.open(path)
    if im.format == "JPEG" and im.mode in ("RGB", "L", "CMYK", "YCbCr"):
        im.draft(im.mode, (side, side))
    im.load()


def hash_variants(stage: HashStage) -> dict:
    """The timed hash variants, each a function of a path."""
    import imagehash
    from PIL import Image

    return {
        "baseline": lambda p: imagehash.phash(Image.open(p)),
        "hash_only": lambda p: stage.compute(decode_file(p, HASH_ONLY)),
        "full": lambda p: stage.compute(decode_file(p, FULL)),
        "decode_full": lambda p: decode_file(p, FULL),
        "decode_hash_only": lambda p: decode_file(p, HASH_ONLY),
        "decompress": decompress,
    }


def bench_hash(files: list[Path], repeats: int, threads: tuple[int, ...] = ()) -> dict:
    """Timings of the hash variants plus the agreement of the hash-only and full hashes;
    with ``threads``, also baseline and hash-only candidates/s through thread pools of
    those sizes (:func:`bench.speed_report.time_threads`)."""
    import warnings

    stage = HashStage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variants = hash_variants(stage)
        timings = time_interleaved(files, variants, repeats)
        pools = {n: time_threads(files, {k: variants[k] for k in ("baseline", "hash_only")},
                                 n, repeats) for n in threads}
        a = np.stack([stage.compute(decode_file(p, HASH_ONLY)) for p in files])
        b = np.stack([stage.compute(decode_file(p, FULL)) for p in files])
    # per file: the smaller Hamming distance of the (trimmed, whole) code pairs,
    # which is what a gallery lookup sees
    dist = np.unpackbits(a ^ b, axis=-1).sum(-1).min(-1)
    return {"timings": timings, "hash_only_vs_full": dist, "pools": pools}


def build_local_gallery(files: list[Path]) -> tuple[object, object, dict]:
    """A :class:`LocalIndex` of ``files`` (gallery features, HNSW built) and its memory."""
    from monitor.matching.index.local import LocalIndex
    from monitor.matching.stages.local import LocalStage

    stage, index = LocalStage(), LocalIndex()
    t0 = time.perf_counter()
    tracemalloc.start()
    for gid, p in enumerate(files):
        index.add(gid, stage.compute(decode_file(p, FULL), gallery=True))
    features_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    extract_s = time.perf_counter() - t0
    rss0, t1 = rss_bytes(), time.perf_counter()
    mem = {"images": len(files), "descriptors": index.descriptor_count,
           "features_bytes": features_bytes, "hnsw_bytes": max(rss_bytes() - rss0, 0),
           "extract_s": extract_s, "build_s": time.perf_counter() - t1}
    return stage, index, mem


def bench_local(files: list[Path], stage, index, repeats: int) -> dict[str, Timing]:
    """Baseline pHash vs the local stage (decode, features, vote, verify) per file."""
    import imagehash
    from PIL import Image

    def local(p: Path) -> None:
        stage.match_image(decode_file(p, FULL), index)  # with region proposals on a miss

    return time_interleaved(files, {"baseline": lambda p: imagehash.phash(Image.open(p)),
                                    "local": local}, repeats, warmup=1)


def local_scaling(stage, index, queries: list[Path], factors: tuple[int, ...]) -> list[dict]:
    """Vote-search ms per candidate as the local gallery grows: the real gallery
    replicated ``f`` times with descriptor noise (±2 of 255), HNSW built each time
    (``build_s`` includes storing the features)."""
    from monitor.matching.index.local import LocalIndex
    from monitor.matching.stages.local_features import Features

    feats = [stage.compute(decode_file(p, FULL)) for p in queries]
    rng = np.random.default_rng(0)
    base = {g: index.features(g)[0] for g in index.ids()}
    out = []
    for f in factors:
        grown, t0 = LocalIndex(), time.perf_counter()
        for copy in range(f):
            for g, v in base.items():
                d = v.descriptors
                if copy:
                    d = np.clip(d.astype(np.int16) + rng.integers(-2, 3, d.shape), 0, 255)
                grown.add(copy * 1_000_000 + g,
                          Features(v.keypoints, d.astype(np.uint8), v.size, v.scale))
        build = time.perf_counter() - t0  # the vote's HNSW graph grows with each add
        t0 = time.perf_counter()
        for q in feats:
            stage.shortlist(q, grown)
        out.append({"images": len(grown), "descriptors": grown.descriptor_count,
                    "ms": (time.perf_counter() - t0) / len(feats) * 1e3, "build_s": build})
    return out


def bench_clip(files: list[Path], model: str | None, batch: int, batches: int,
               repeats: int) -> list[dict]:
    """Raw ``encode_image`` vs ``ClipStage.compute`` images/s via :mod:`bench.clip_speed`."""
    from bench.clip_speed import TINY_DIR, time_raw, time_stage
    from monitor.config import ClipSettings
    from monitor.imaging.decode import decode_bytes
    from monitor.matching.stages.clip import ClipStage

    blobs = [p.read_bytes() for p in files]
    blobs = [blobs[i % len(blobs)] for i in range(batch * batches)]
    runs = [("monitor-tiny-vit (random)",
             ClipSettings(model="monitor-tiny-vit", pretrained="", model_config_dir=str(TINY_DIR),
                          batch_size=batch), TINY_DIR)]
    if model:
        runs.append((f"{model} (random weights)",
                     ClipSettings(model=model, pretrained="", batch_size=batch), Path.cwd()))
    out = []
    for label, settings, root in runs:
        stage = ClipStage(settings, root)
        status = stage.status()
        if not status.available:
            out.append({"name": label, "error": status.reason})
            continue
        raw = time_raw(stage, [decode_bytes(b) for b in blobs], repeats)
        full = time_stage(stage, blobs, repeats)
        out.append({"name": label, "batch": batch, "images": len(blobs), "raw": raw,
                    "stage": full})
    return out
