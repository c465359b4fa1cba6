"""Worker side of :mod:`bench.accuracy`: index the gallery once per process, answer queries.

Each worker process builds every detector over the whole gallery in its
initializer, then handles queries one at a time. Timings (milliseconds; wall
clock, ``time.perf_counter``, and CPU time of the worker process,
``time.process_time``, which a machine shared with other jobs inflates less)
are per query: ``decode`` once (the product's
:func:`~monitor.imaging.decode.decode_file`), then each detector on a fresh copy of the
decoded image (empty resize cache), so each detector's ``ms`` plus ``decode``
is its cost per query with decoding included. OpenCV and FAISS are limited to
one thread per process; parallelism comes from the worker processes.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import detectors as dets
from monitor.config import Settings
from monitor.errors import MonitorError
from monitor.imaging.decode import DecodeLimits, decode_file
from monitor.matching.rules import Rule

_STATE: dict = {}
EVIDENCE_TOP = 10
"""Matches per query whose hits are kept for ``--evidence`` (best first)."""


def limits(settings: Settings) -> DecodeLimits:
    """The decode limits the product uses with ``settings``."""
    d = settings.decode
    return DecodeLimits(max_bytes=d.max_bytes, max_pixels=d.max_pixels, work_side=d.work_side)


def init(gallery: list[str], settings: Settings, rules: list[Rule]) -> None:
    """Process initializer: single-threaded libraries, every detector indexed."""
    import cv2
    import faiss

    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    detectors = dets.build(settings)
    lim = limits(settings)
    warm = None
    for gid, path in enumerate(gallery):
        try:
            image = decode_file(Path(path), lim)
        except (MonitorError, OSError):
            continue
        dets.add_gallery(detectors, gid, image)
        warm = warm or image
    full = next(d for d in detectors if getattr(d, "kind", "") == "product")
    if warm is not None:  # the FAISS index builds lazily: not inside the first query's time
        full.query(dets.fresh(warm))
    _STATE.update(detectors=detectors, full=full, rules=rules, limits=lim)


def _summary(m) -> dict:
    return {"gid": m.gallery_id, "stage": m.stage, "score": round(m.score, 4),
            "distance": m.distance, "inliers": m.inliers}


def _hits(m) -> list[dict]:
    """Every hit of one match, as the evidence :mod:`bench.calibrate` refits the score on."""
    return [{"stage": h.stage, "score": round(h.score, 6), "distance": h.distance,
             "cosine": h.cosine, "inliers": h.inliers, "agreement": h.agreement,
             "similarity": h.similarity, "normalised": h.normalised,
             "structure": h.structure,
             "region": h.region is not None} for h in m.hits]


def run(job: tuple[int, str]) -> dict:
    """Answer query ``job = (index, path)``; returns predictions, timings and rule outcome."""
    qi, path = job
    out: dict = {"qi": qi, "preds": {}, "ms": {}, "cpu": {}, "error": None}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        image = decode_file(Path(path), _STATE["limits"])
    except (MonitorError, OSError) as exc:
        out["error"] = str(exc)
        return out
    out["decode_ms"] = 1000 * (time.perf_counter() - t0)
    out["decode_cpu"] = 1000 * (time.process_time() - c0)
    for det in _STATE["detectors"]:
        t, c = time.perf_counter(), time.process_time()
        preds = det.query(dets.fresh(image))
        out["ms"][det.name] = 1000 * (time.perf_counter() - t)
        out["cpu"][det.name] = 1000 * (time.process_time() - c)
        out["preds"][det.name] = preds
    full = _STATE["full"]
    flagged = dets.rules_flag(full.last, _STATE["rules"])
    out["flag"] = None if flagged is None else _summary(flagged)
    out["top"] = [_summary(m) for m in full.last[:3]]
    out["evidence"] = [{"gid": m.gallery_id, "hits": _hits(m)} for m in full.last[:EVIDENCE_TOP]]
    return out
