"""Seeded split of the real corpus into a protected gallery and edited queries, cached.

Split (stratified by source, so every source is represented): exact-byte
duplicates (same sha256) are dropped first; files are grouped into series of
related images (:mod:`bench.series`: shared name tokens, pHash within 8 bits, or a
hand-verified shared-artwork group of ``bench/shared_content.csv``)
and the gallery takes at most one file per series while distractors come only
from untouched series, so no distractor is a sibling of a gallery image; each
source's files are shuffled with ``random.Random(f"{seed}:{source}")`` and counts
are shared between sources in proportion to their sizes (largest remainder, at
least one each while possible). Gallery and distractors never overlap.

Queries, as in DISC21 (Douze et al., 2021), are *all* edited: one copy of every
gallery image per family (positives) and one edit of every distractor image, the
family cycling through the list (distractors), so an edit by itself is no cue.
The edit seed is ``seed * 1_000_003 + index`` (positives: gallery index; distractors:
1_000_000 + distractor index); :func:`bench.edits.apply` also mixes in the family.
Edits start from the decoded working copy (alpha composited on white, as the
product sees the original) and are stored as JPEG quality 90, like a re-upload.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from monitor.imaging.decode import decode_file


@dataclass(frozen=True)
class Query:
    """One query file: ``truth`` is the gallery index it copies, or -1 for a distractor."""

    path: str
    family: str
    truth: int
    origin: str


@dataclass(frozen=True)
class Split:
    """Gallery files (index = gallery id), the query list, and originals that failed to decode."""

    gallery: list[str]
    queries: list[Query]
    sources: dict[str, dict[str, int]]
    undecodable: list[str]


def corpus_files(corpus: Path) -> dict[str, list[Path]]:
    """``{source: [file, ...]}`` from ``manifest.csv`` (or the folders), exact duplicates out."""
    manifest = corpus / "manifest.csv"
    rows: list[tuple[str, Path]] = []
    if manifest.exists():
        with manifest.open(newline="") as fh:
            rows = [(r["source"], corpus / r["path"]) for r in csv.DictReader(fh)]
    else:
        rows = [(p.parent.name, p) for p in sorted((corpus / "images").glob("*/*"))]
    seen: set[str] = set()
    out: dict[str, list[Path]] = {}
    for source, path in sorted(rows, key=lambda r: str(r[1])):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.setdefault(source, []).append(path)
    return out


def _shares(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over sources proportionally (largest remainder), >= 1 each if possible."""
    n = sum(sizes.values())
    total = min(total, n)
    exact = {s: total * k / n for s, k in sizes.items()}
    floor = 1 if total >= len(sizes) else 0
    share = {s: min(sizes[s], max(floor, int(v))) for s, v in exact.items()}
    order = sorted(sizes, key=lambda s: (-(exact[s] - int(exact[s])), s))
    while sum(share.values()) < total:
        for s in order:
            if sum(share.values()) < total and share[s] < sizes[s]:
                share[s] += 1
    while sum(share.values()) > total:
        big = max(share, key=lambda s: (share[s], s))
        share[big] -= 1
    return share


def split(files: dict[str, list[Path]], n_gallery: int, n_distractors: int,
          seed: int, groups: dict[str, int] | None = None
          ) -> tuple[list[Path], list[Path], dict[str, dict[str, int]]]:
    """Gallery and distractor files, stratified by source; plus per-source counts.

    With ``groups`` (:func:`bench.series.series`), the gallery takes at most one
    file per series and distractors come only from series the gallery does not touch.
    """
    groups = groups or {str(p): i for i, p in enumerate(p for ps in files.values() for p in ps)}
    shuffled = {}
    for source, paths in sorted(files.items()):
        paths = list(paths)
        random.Random(f"{seed}:{source}").shuffle(paths)
        shuffled[source] = paths
    series_per_source = {s: len({groups[str(p)] for p in ps}) for s, ps in shuffled.items()}
    g_share = _shares(series_per_source, n_gallery)
    gallery, used = [], set()
    for s, paths in shuffled.items():
        picked = []
        for p in paths:
            if len(picked) < g_share[s] and groups[str(p)] not in used:
                picked.append(p)
                used.add(groups[str(p)])
        gallery += picked
        g_share[s] = len(picked)
    pool = {s: [p for p in ps if groups[str(p)] not in used] for s, ps in shuffled.items()}
    d_share = _shares({s: len(p) for s, p in pool.items()}, n_distractors)
    distractors, counts = [], {}
    for s, paths in shuffled.items():
        distractors += pool[s][:d_share[s]]
        counts[s] = {"corpus": len(paths), "gallery": g_share[s], "distractors": d_share[s],
                     "excluded_siblings": len(paths) - g_share[s] - len(pool[s])}
    return gallery, distractors, counts


def extra_distractors(extra: Path, n: int, seed: int, gallery: list[Path],
                      cache: Path) -> list[Path]:
    """Up to ``n`` files of a distractor-only corpus (``bench/distractors.sh``), stratified
    by source and shuffled with ``seed``, none within :data:`bench.series.MAX_BITS` of a
    gallery image's pHash under any dihedral transform (the split's sibling rule)."""
    from bench.series import MAX_BITS, _cached_phashes

    files = corpus_files(extra)
    shuffled = {}
    for source, paths in sorted(files.items()):
        paths = list(paths)
        random.Random(f"{seed}:extra:{source}").shuffle(paths)
        shuffled[source] = paths
    every = [p for ps in files.values() for p in ps]
    codes = _cached_phashes(every, cache)[:, 0, :]
    where = {str(p): i for i, p in enumerate(every)}
    ref = _cached_phashes(list(gallery), cache / "gallery")
    near = {str(p) for p in every
            if ref.size and (ref != codes[where[str(p)]]).sum(axis=2).min() <= MAX_BITS}
    pool = {s: [p for p in ps if str(p) not in near] for s, ps in shuffled.items()}
    share = _shares({s: len(ps) for s, ps in pool.items()}, n)
    return [p for s, ps in pool.items() for p in ps[:share[s]]]


def _edit_one(job: tuple[str, str, str, int]) -> str | None:
    """Write one edited query; returns the source path when it cannot be decoded."""
    from bench import edits
    from monitor.errors import DecodeError

    src, dst, family, seed = job
    try:
        image = decode_file(Path(src)).image
    except DecodeError:
        return src
    out = edits.apply(image, family, seed)
    tmp = Path(dst + ".tmp")
    out.save(tmp, "JPEG", quality=90)
    tmp.replace(dst)
    return None


def build(corpus: Path, cache: Path, n_gallery: int, n_distractors: int, seed: int,
          families: list[str], workers: int = 2, progress=None,
          extra: Path | None = None, n_extra: int = 0) -> Split:
    """Split the corpus and write (or reuse) the edited queries under ``cache``.

    With ``extra``, up to ``n_extra`` more distractors come from that distractor-only
    corpus (:func:`extra_distractors`), edited like the others and appended after them.
    The cache folder is keyed by corpus, sizes, seed, families, the extra corpus and the
    source of ``bench/edits.py``, so a changed edit recipe regenerates the queries.
    """
    edits_src = (Path(__file__).parent / "edits.py").read_bytes()
    edits_src += (Path(__file__).parent / "shared_content.csv").read_bytes()
    edits_src += (Path(__file__).parent / "edits_heavy.py").read_bytes()
    key = hashlib.sha256(json.dumps([str(corpus.resolve()), n_gallery, n_distractors, seed,
                                     families, "series-v6"]
                                    + ([str(extra.resolve()), n_extra] if extra else [])
                                    ).encode() + edits_src
                         ).hexdigest()[:12]
    folder = cache / f"s{seed}-g{n_gallery}-d{n_distractors}-{key}"
    index = folder / "split.json"
    if index.exists():
        data = json.loads(index.read_text())
        return Split(data["gallery"], [Query(**q) for q in data["queries"]], data["sources"],
                     data["undecodable"])
    from bench.series import series

    files = corpus_files(corpus)
    groups = series(files, cache)
    gallery, distractors, counts = split(files, n_gallery, n_distractors, seed, groups)
    (folder / "q").mkdir(parents=True, exist_ok=True)
    queries, jobs = [], []
    for gi, src in enumerate(gallery):
        for fam in families:
            dst = folder / "q" / f"pos_{gi:05d}_{fam}.jpg"
            queries.append(Query(str(dst), fam, gi, str(src)))
            jobs.append((str(src), str(dst), fam, seed * 1_000_003 + gi))
    if extra is not None and n_extra > 0:
        distractors += extra_distractors(extra, n_extra, seed, gallery, cache)
    for di, src in enumerate(distractors):
        fam = families[di % len(families)]
        dst = folder / "q" / f"neg_{di:05d}_{fam}.jpg"
        queries.append(Query(str(dst), fam, -1, str(src)))
        jobs.append((str(src), str(dst), fam, seed * 1_000_003 + 1_000_000 + di))
    todo = [j for j in jobs if not Path(j[1]).exists()]
    failed: set[str] = set()
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for k, bad in enumerate(pool.map(_edit_one, todo, chunksize=8)):
            failed |= {bad} if bad else set()
            if progress:
                progress(k + 1, len(todo))
    # undecodable originals: their queries go; a gallery slot stays (never indexed)
    queries = [q for q in queries if q.origin not in failed]
    data = {"gallery": [str(p) for p in gallery], "queries": [asdict(q) for q in queries],
            "sources": counts, "undecodable": sorted(failed)}
    index.write_text(json.dumps(data, indent=1))
    return Split(data["gallery"], queries, counts, sorted(failed))
