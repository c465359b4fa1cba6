"""The measuring side of :mod:`bench.scale`, run in a fresh process per gallery size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import monitor
from bench import runner
from bench.detectors import rules_flag
from monitor.config import Settings
from monitor.matching.rules import load_rules


def _status(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MB (``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _no_fetch(ids: list[int]) -> list:
    raise RuntimeError(f"the saved gallery lacks {len(ids)} entries: rebuild it (--rebuild)")


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def run(folder: Path, n: int, queries: list[tuple[str, int]], settings: Settings) -> dict:
    """Open the gallery under ``folder`` (``n`` entries, ids ``0..n-1``) and check every
    ``(path, truth)`` query (truth -1: unrelated); figures as in :mod:`bench.scale`."""
    import faiss
    import imagehash
    from PIL import Image

    from monitor.imaging.decode import decode_file
    from monitor.matching.engine import Engine

    faiss.omp_set_num_threads(1)
    rss0 = _status("VmRSS")
    t0 = time.perf_counter()
    engine = Engine(settings)
    engine.load(folder, np.arange(n, dtype=np.int64), _no_fetch)
    load_s = time.perf_counter() - t0
    rss_loaded = _status("VmRSS")
    limits = runner.limits(settings)
    rules = load_rules(Path(monitor.__file__).parent / "defaults")
    times: dict[str, list[float]] = {"copy": [], "unrelated": [], "retrieval": [], "phash": []}
    found = flagged = 0
    first = None
    for path, truth in queries:
        t = time.perf_counter()
        image = decode_file(Path(path), limits)
        hit = rules_flag(engine.match(image), rules)
        dt = (time.perf_counter() - t) * 1e3
        first = first if first is not None else time.perf_counter() - t0
        times["copy" if truth >= 0 else "unrelated"].append(dt)
        found += truth >= 0 and hit is not None and hit.gallery_id == truth
        flagged += truth < 0 and hit is not None
        times["retrieval"].append(_retrieval_ms(engine, image))
        t = time.perf_counter()
        imagehash.phash(Image.open(path))
        times["phash"].append((time.perf_counter() - t) * 1e3)
    copies = len(times["copy"])
    per_candidate = np.mean(times["copy"] + times["unrelated"])
    return {
        "rss_mb": round(rss_loaded, 1), "rss_before_mb": round(rss0, 1),
        "peak_rss_mb": round(_status("VmHWM"), 1),
        "load_s": round(load_s, 2), "startup_s": round(first or 0.0, 2),
        "retrieval_ms_p50": _pct(times["retrieval"], 50),
        "retrieval_ms_p99": _pct(times["retrieval"], 99),
        "check_ms_p50_unrelated": _pct(times["unrelated"], 50),
        "check_ms_p99_unrelated": _pct(times["unrelated"], 99),
        "check_ms_p50_copy": _pct(times["copy"], 50),
        "check_ms_p99_copy": _pct(times["copy"], 99),
        "recall": round(found / max(copies, 1), 4), "copies": copies,
        "unrelated_flagged": int(flagged), "unrelated": len(times["unrelated"]),
        "stopped_by_cascade": engine.counts["stopped"],
        "cascade_floor": round(settings.retrieval.normalised_floor(engine.gallery_size()), 4),
        "phash_ms_mean": round(float(np.mean(times["phash"])), 2),
        "throughput_vs_phash": round(float(np.mean(times["phash"]) / per_candidate), 4),
        "index": {"hash": engine.hash_index.kind,
                  "descriptor": engine.descriptor_index.kind if engine.descriptor_index else None,
                  "vote": engine.local_index.vote is not None},
    }


def _retrieval_ms(engine, image) -> float:
    """Milliseconds of the index look-ups alone for ``image`` (codes and SSCD vectors
    computed beforehand, outside the timing)."""
    codes = engine.hash.compute(image)
    vectors, _ = engine.descriptor.embed_views(image)
    r, k = engine.settings.retrieval, engine.settings.descriptor.top_k
    t = time.perf_counter()
    engine.hash_index.search_many(codes, engine.settings.hash.max_distance, r.hash_k)
    engine.descriptor_index.search(vectors, k)
    return (time.perf_counter() - t) * 1e3
