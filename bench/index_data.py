"""Gallery data of :mod:`bench.index_recall`: real corpus pHashes and SSCD descriptors,
and synthetic ones made from them.

Data (``/tmp/monitor-corpus``, ≈4,900 real images, cached under
``/tmp/monitor-bench-cache``):

- dense: SSCD (``sscd_distilled``) descriptors of up to 2,000 real corpus images;
  the rest *synthetic*: normalised mixtures of 2-3 real descriptors (Dirichlet(1)
  weights) plus isotropic Gaussian noise of the same norm as the mixture. Queries:
  ``copy`` = noisy copies of gallery vectors (cosine ≈ 0.8 to their source, as an
  edited copy), ``unrelated`` = fresh synthetic mixtures not in the gallery.
- binary: the 16 gallery pHashes (``HashStage.compute_gallery``) of every real corpus
  image; *synthetic* images take a real image's 16 codes XOR one random mask of 16-24
  bits (so they are not near-duplicates of it). Queries: a real image's identity code
  with 0-12 random bits flipped; truth is every id within 12 bits by exact search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS, CACHE = Path("/tmp/monitor-corpus"), Path("/tmp/monitor-bench-cache")
REAL_SSCD = 2000
"""Real corpus images embedded with SSCD (the rest of the gallery is synthetic)."""


def real_data(corpus: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(phash (M, 16, 8) uint8, sscd (K, 512) float32)`` of the real corpus images
    (K ≤ :data:`REAL_SSCD`, an evenly spread sample), computed once and cached."""
    from bench.dataset import corpus_files

    files = [p for paths in corpus_files(corpus).values() for p in paths]
    target = cache / f"index-recall-real-v1-{len(files)}.npz"
    if target.exists():
        with np.load(target) as z:
            return z["phash"], z["sscd"]
    from monitor.config import DescriptorSettings
    from monitor.imaging.decode import decode_file
    from monitor.matching.stages.descriptor import DescriptorStage
    from monitor.matching.stages.hash import HashStage

    hasher, stage = HashStage(), DescriptorStage(DescriptorSettings(), Path("."))
    embed = set(np.linspace(0, len(files) - 1, min(REAL_SSCD, len(files))).astype(int).tolist())
    codes, vectors = [], []
    for i, path in enumerate(files):
        try:
            image = decode_file(path)
        except Exception:  # noqa: BLE001 (an undecodable corpus file is skipped)
            continue
        codes.append(hasher.compute_gallery(image))
        if i in embed and stage.ready():
            vectors.append(stage.compute([image])[0])
    phash = np.stack(codes)
    sscd = np.stack(vectors) if vectors else np.zeros((0, 512), np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, phash=phash, sscd=sscd)
    return phash, sscd


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` ``(N, D)`` scaled to unit length, float32."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixtures(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, D) float32`` synthetic descriptors: Dirichlet(1) mixtures of 2-3 rows of
    ``real``, normalised, plus Gaussian noise of equal norm, normalised again."""
    out = np.empty((n, real.shape[1]), np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        parts = rng.integers(2, 4, m)
        pick = rng.integers(0, len(real), (m, 3))
        w = rng.dirichlet(np.ones(3), m).astype(np.float32)
        w[parts == 2, 2] = 0
        mix = unit(np.einsum("mk,mkd->md", w, real[pick]))
        out[lo:lo + m] = unit(mix + unit(rng.standard_normal(mix.shape, np.float32)))
    return out


def copies(vectors: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy copies of ``vectors`` ``(Q, D)`` at ``cosine`` to their source."""
    noise = rng.standard_normal(vectors.shape, np.float32)
    noise -= (noise * vectors).sum(1, keepdims=True) * vectors
    return unit(cosine * vectors + np.sqrt(1 - cosine ** 2) * unit(noise))


def flip_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``codes`` ``(Q, 8) uint8`` with ``counts[i]`` distinct random bits of row i flipped."""
    bits = np.unpackbits(codes, axis=1)
    for i, c in enumerate(counts):
        bits[i, rng.choice(bits.shape[1], int(c), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def far_masks(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 8) uint8`` random 64-bit masks with 16-24 bits set."""
    out = np.empty((n, 8), np.uint8)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        rank = np.argsort(rng.random((m, 64), np.float32), axis=1)
        out[lo:lo + m] = np.packbits(rank < rng.integers(16, 25, (m, 1)), axis=1)
    return out
