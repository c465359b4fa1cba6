"""Functional checks of the speed-benchmark helpers (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.speed_index import hamming, planted_codes, planted_vectors
from bench.speed_report import (
    md_table,
    replace_section,
    time_interleaved,
    time_threads,
    write_section,
)
from monitor.matching.index.binary import BinaryIndex
from monitor.matching.index.dense import DenseIndex


def test_planted_codes_sit_at_their_distance_and_are_found() -> None:
    p = planted_codes(5000, 40, max_distance=12, seed=3)
    assert p.codes.shape == (5000, 8) and p.codes.dtype == np.uint8
    assert np.array_equal(hamming(p.queries, p.codes[p.rows]), p.distances)
    index = BinaryIndex(8)
    index.add(np.arange(len(p.codes)), p.codes)
    for q, row, d in zip(p.queries, p.rows, p.distances, strict=True):
        hits = dict(index.search(q, 12))
        assert hits[int(row)] == d
        assert int(row) not in dict(index.search(q, int(d) - 1)) if d else True


def test_planted_vectors_have_the_cosine_and_are_top1() -> None:
    p = planted_vectors(2000, 20, dim=64, cosine=0.9, seed=1)
    assert np.allclose(np.linalg.norm(p.codes, axis=1), 1, atol=1e-5)
    assert np.allclose(p.distances, 0.9, atol=1e-4)
    index = DenseIndex(64)
    index.add(np.arange(len(p.codes)), p.codes)
    for q, row in zip(p.queries, p.rows, strict=True):
        assert index.search(q[None, :], 1)[0][0][0] == int(row)


def test_section_writer_replaces_only_its_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    other = "# Benchmark results\n\n<!-- accuracy:start -->\nACC\n<!-- accuracy:end -->\n"
    path.write_text(other)
    write_section(path, "first")
    text = path.read_text()
    assert text.startswith(other.rstrip("\n")) and "first" in text
    write_section(path, "second")
    text = path.read_text()
    assert "first" not in text and text.count("<!-- speed:start -->") == 1
    assert "<!-- accuracy:start -->\nACC\n<!-- accuracy:end -->" in text
    # a section in the middle stays in the middle; what follows it is untouched
    middle = "A\n<!-- speed:start -->\nold\n<!-- speed:end -->\nB\n"
    assert replace_section(middle, "new") == "A\n<!-- speed:start -->\nnew\n<!-- speed:end -->\nB\n"


def test_section_writer_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "R.md"
    write_section(path, "body")
    assert path.read_text().startswith("# Benchmark results\n\n<!-- speed:start -->\nbody\n")


def test_time_interleaved_runs_every_variant_on_every_item() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    t = time_interleaved([1, 2, 3], {k: (lambda i, k=k: seen[k].append(i)) for k in seen},
                         repeats=2, warmup=1)
    assert seen["a"] == [1, 1, 2, 3, 1, 2, 3] == seen["b"]
    assert set(t) == {"a", "b"} and all(len(v.latencies) == 3 for v in t.values())
    assert all(v.per_second > 0 and v.pct_ms(95) >= v.pct_ms(50) for v in t.values())


def test_md_table() -> None:
    assert md_table(["x", "y"], [[1, "a"]]) == "| x | y |\n|---|---|\n| 1 | a |"


def test_time_threads_maps_every_variant_over_every_item() -> None:
    import threading

    seen: dict[str, list[int]] = {"a": [], "b": []}
    threads: set[int] = set()
    lock = threading.Lock()

    def run(k: str, i: int) -> None:
        with lock:
            seen[k].append(i)
            threads.add(threading.get_ident())

    rates = time_threads(list(range(10)), {k: (lambda i, k=k: run(k, i)) for k in seen},
                         threads=2, repeats=3)
    assert set(rates) == {"a", "b"} and all(r > 0 for r in rates.values())
    # warm-up (2 × threads items) then 3 full passes, per variant
    assert sorted(seen["a"]) == sorted(seen["b"]) == sorted([0, 1, 2, 3] + list(range(10)) * 3)
    assert threading.get_ident() not in threads
