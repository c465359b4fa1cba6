"""Gallery-lookup benchmarks of :mod:`bench.speed`: flat indices vs their alternatives.

Synthetic galleries of random codes or vectors with *planted* near-duplicates:
each query has exactly one gallery entry at a known Hamming distance (codes) or
cosine (vectors), so recall of the planted entry is measured exactly. Random
64-bit codes are uniform, which is the best case for hashing-based indices
(real pHashes cluster); flat search does not care.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from bench.speed_report import rss_bytes
from monitor.matching.index.binary import BinaryIndex
from monitor.matching.index.dense import DenseIndex


@dataclass(frozen=True)
class Planted:
    """A synthetic gallery: ``codes`` (or vectors), ``queries``, and where each query's
    planted near-duplicate sits (``rows``) and how far it is (``distances``)."""

    codes: np.ndarray
    queries: np.ndarray
    rows: np.ndarray
    distances: np.ndarray


def planted_codes(n: int, queries: int, max_distance: int, nbytes: int = 8,
                  seed: int = 0) -> Planted:
    """``n`` random ``nbytes``-byte codes; for each of ``queries`` random query codes one
    gallery code at exactly ``d`` bits (``d`` uniform in ``0..max_distance``)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (queries, nbytes), dtype=np.uint8)
    rows = rng.choice(n, queries, replace=False)
    dist = rng.integers(0, max_distance + 1, queries)
    bits = np.unpackbits(q, axis=1)
    for i in range(queries):
        flip = rng.choice(nbytes * 8, int(dist[i]), replace=False)
        b = bits[i].copy()
        b[flip] ^= 1
        codes[rows[i]] = np.packbits(b)
    return Planted(codes, q, rows, dist)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between packed uint8 codes (broadcasting rows)."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1)


def planted_vectors(n: int, queries: int, dim: int = 512, cosine: float = 0.9,
                    seed: int = 0) -> Planted:
    """``n`` random unit vectors; each query is a planted gallery vector plus noise so
    their cosine is ``cosine`` (distances holds the exact cosines)."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = rng.choice(n, queries, replace=False)
    noise = rng.standard_normal((queries, dim), dtype=np.float32)
    base = vecs[rows]
    noise -= (noise * base).sum(1, keepdims=True) * base  # orthogonal to the planted one
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = cosine * base + np.sqrt(1 - cosine**2) * noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return Planted(vecs, q.astype(np.float32), rows, (q * base).sum(1))


def _per_query(fn, queries: np.ndarray) -> float:
    """Mean milliseconds per query of ``fn(row)`` (one query at a time, as the checker)."""
    fn(queries[0])
    t0 = time.perf_counter()
    for row in queries:
        fn(row)
    return (time.perf_counter() - t0) / len(queries) * 1e3


def bench_binary(n: int, queries: int, radius: int, seed: int = 0) -> dict:
    """``BinaryIndex`` (product API, flat) at ``n`` codes: ms/query, planted recall,
    memory (numpy arrays by tracemalloc + FAISS copy by RSS delta) per code."""
    p = planted_codes(n, queries, radius, seed=seed)
    tracemalloc.start()
    index = BinaryIndex(8)
    index.add(np.arange(n, dtype=np.int64), p.codes)
    py_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t0 = time.perf_counter()
    flat = index._index()  # build the FAISS copy now, not inside the first query
    build_s = time.perf_counter() - t0
    faiss_bytes = flat.ntotal * flat.code_size  # exact; an RSS delta misses reused pages
    found = sum(int(p.rows[i]) in {g for g, _ in index.search(p.queries[i], radius)}
                for i in range(queries))
    ms = _per_query(lambda q: index.search(q, radius), p.queries)
    return {"n": n, "ms": ms, "recall": found / queries, "build_s": build_s,
            "bytes_per_code": (py_bytes + max(faiss_bytes, 0)) / n}


def bench_binary_alternatives(n: int, queries: int, radius: int, seed: int = 0,
                              hnsw_only: bool = False) -> list[dict]:
    """FAISS alternatives to flat search at ``n`` codes, raw FAISS calls (no wrapper).

    ``IndexBinaryMultiHash`` (multi-index hashing, Norouzi et al. 2012) answers range
    queries: 4 tables of 16 bits probed with up to ``nflip`` flipped bits, exact up to
    ``4 * (nflip + 1) - 1`` bits. ``IndexBinaryHNSW`` answers k-NN only (k = 10 here),
    approximate, and its build is slow (minutes at 1M on one core): ``hnsw_only``
    runs it alone, otherwise it is left out.
    """
    import faiss

    p = planted_codes(n, queries, radius, seed=seed)
    out = []

    def add(name, index, query) -> None:
        rss0, t0 = rss_bytes(), time.perf_counter()
        index.add(p.codes)
        build = time.perf_counter() - t0
        mem = max(rss_bytes() - rss0, 0) / n
        hits = sum(int(p.rows[i]) in query(index, p.queries[i:i + 1]) for i in range(queries))
        ms = _per_query(lambda q: query(index, q[None, :]), p.queries)
        out.append({"name": name, "ms": ms, "recall": hits / queries, "build_s": build,
                    "bytes_per_code": mem})

    def rng_q(index, q):
        lims, _, labels = index.range_search(q, radius + 1)
        return set(labels[lims[0]:lims[1]].tolist())

    def knn_q(index, q):
        return set(index.search(q, 10)[1][0].tolist())

    if hnsw_only:
        hnsw = faiss.IndexBinaryHNSW(64, 16)
        hnsw.hnsw.efSearch = 64
        add("IndexBinaryHNSW M 16, efSearch 64 (10-NN)", hnsw, knn_q)
        return out
    add("IndexBinaryFlat (range)", faiss.IndexBinaryFlat(64), rng_q)
    for nflip in (2, 3):
        mh = faiss.IndexBinaryMultiHash(64, 4, 16)
        mh.nflip = nflip
        add(f"IndexBinaryMultiHash 4×16 bit, nflip {nflip} (range, exact ≤ {4 * nflip + 3})",
            mh, rng_q)
    return out


def bench_dense(n: int, queries: int, k: int = 10, seed: int = 0) -> dict:
    """``DenseIndex`` (flat inner product) at ``n`` 512-d vectors: ms/query, planted
    recall at ``k``, bytes per vector (numpy by tracemalloc + FAISS copy by RSS)."""
    p = planted_vectors(n, queries, seed=seed)
    tracemalloc.start()
    index = DenseIndex(p.codes.shape[1])
    index.add(np.arange(n, dtype=np.int64), p.codes)
    py_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    flat = index._index()
    faiss_bytes = flat.ntotal * flat.d * 4  # IndexFlatIP stores float32 rows
    found = sum(int(p.rows[i]) in {g for g, _ in index.search(p.queries[i:i + 1], k)[0]}
                for i in range(queries))
    ms = _per_query(lambda q: index.search(q[None, :], k), p.queries)
    return {"n": n, "ms": ms, "recall": found / queries,
            "bytes_per_vector": (py_bytes + max(faiss_bytes, 0)) / n}


def bench_dense_ivf(n: int, queries: int, k: int = 10, nlist: int = 256,
                    seed: int = 0) -> list[dict]:
    """``IndexIVFFlat`` (inner product, ``nlist`` cells, trained on 20k vectors) at
    several ``nprobe``: ms/query and planted recall at ``k``."""
    import faiss

    p = planted_vectors(n, queries, seed=seed)
    dim = p.codes.shape[1]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    ivf.train(p.codes[np.random.default_rng(seed).choice(n, min(n, 20_000), replace=False)])
    ivf.add(p.codes)
    build = time.perf_counter() - t0
    out = []
    for nprobe in (4, 16, 64):
        ivf.nprobe = nprobe
        found = sum(int(p.rows[i]) in set(ivf.search(p.queries[i:i + 1], k)[1][0].tolist())
                    for i in range(queries))
        ms = _per_query(lambda q: ivf.search(q[None, :], k), p.queries)
        out.append({"name": f"IndexIVFFlat nlist {nlist}, nprobe {nprobe}", "ms": ms,
                    "recall": found / queries, "build_s": build})
    return out
