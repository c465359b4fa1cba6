"""Series of related images in a corpus, so distractors are truly unrelated to the gallery.

Real collections hold series: one drawing in colour and black-and-white, a
jigsaw piece in five colours, an icon theme built on one template, a wallpaper
at six resolutions. A distractor from a gallery image's series is a partial
copy, not an unrelated image, so it must not count as a false positive. DISC21
(Douze et al., 2021) likewise removed near-duplicates between its reference and
distractor sets. Two files are in one series (union-find) when

* they share a *rare* name token (at least :data:`MIN_TOKEN` letters, in at
  most :data:`MAX_TOKEN_FILES` files of the source; camelCase split; colour and
  variant words such as ``bw`` ignored) within one source, or
* they carry the same name (``home6.png`` under two hashes) or the same letters
  once digits and punctuation go (``arrow2-3-1``, ``arrow3-2-1``), or both follow the
  playing-card pattern ``<deck>_<suit>_<rank>`` (decks share their pips), or
* their 64-bit pHashes (imagehash), over the 8 dihedral variants, are within
  :data:`MAX_BITS` bits, or
* their names are listed together in ``bench/shared_content.csv``: groups of
  files that share artwork (the Union Jack in a dozen flags, one box drawing in
  an icon theme, one stereo calibration shoot), each checked by eye on a contact
  sheet of the whole group. DISC21 likewise verified by hand the distractors that
  its detectors flagged; the groups were first noticed as product false positives
  (seeds 5, 11 and 23), then every corpus file with the same artwork was listed
  (for the KDE page template: the product engine, with three of its icons as the
  gallery, queried with every corpus file; each hit checked on the sheet).

None of the tests runs the product's detectors. Results are cached as JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

MIN_TOKEN = 4
MAX_TOKEN_FILES = 25
MAX_BITS = 8
IGNORED = {"black", "white", "gray", "grey", "green", "blue", "yellow", "orange", "purple",
           "brown", "pink", "colour", "color", "colored", "coloured", "simple", "plain",
           "outline", "line", "icon", "icons", "clipart", "openclipart", "with", "the",
           "and", "small", "large", "big", "image", "png", "jpg"}


SHARED = Path(__file__).with_name("shared_content.csv")
"""Hand-verified groups of files that share artwork: ``group,source,names,reason``,
``names`` a space-separated list of ``fnmatch`` patterns over file names without
the corpus's md5 prefix."""

CARD = re.compile(r"[a-z]+_[cdhs]_(\d+|[ajqk]|jk)(_[a-z])?")


def _name(path: Path) -> str:
    return path.stem.split("_", 1)[-1].lower()


def tokens(path: Path) -> set[str]:
    """Name tokens of a corpus file (``<md5>_<name>.<ext>``), lower-case, >= MIN_TOKEN letters."""
    name = path.stem.split("_", 1)[-1]
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()
    return {t for t in re.split(r"[^a-z]+", name) if len(t) >= MIN_TOKEN and t not in IGNORED}


def shared_groups(path: Path = SHARED) -> list[tuple[str, str, list[str]]]:
    """``[(group, source, [pattern, ...])]`` from :data:`SHARED` (empty when missing)."""
    import csv

    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [(r["group"], r["source"], r["names"].split()) for r in csv.DictReader(fh)]


def _shared_members(files: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """``{group: [file, ...]}``: the corpus files each shared-content group names."""
    from fnmatch import fnmatch

    out: dict[str, list[Path]] = {}
    for group, source, patterns in shared_groups():
        for p in files.get(source, []):
            name = p.name.split("_", 1)[-1].lower()
            if any(fnmatch(name, pat) for pat in patterns):
                out.setdefault(group, []).append(p)
    return out


def _phashes(paths: list[Path]) -> np.ndarray:
    """``(N, 8, 64) bool`` dihedral pHashes of the decoded files (all False if undecodable)."""
    import imagehash
    from PIL import Image

    from monitor.imaging.decode import decode_file
    from monitor.matching.stages.hash import DIHEDRAL

    out = np.zeros((len(paths), 8, 64), bool)
    for i, p in enumerate(paths):
        try:
            im = decode_file(p).scaled(128)
        except Exception:  # noqa: BLE001 - undecodable originals are reported elsewhere
            continue
        for j, t in enumerate(DIHEDRAL):
            v = im if t is None else im.transpose(t)
            out[i, j] = imagehash.phash(v if isinstance(v, Image.Image) else im).hash.reshape(-1)
    return out


def _cached_phashes(paths: list[Path], cache: Path) -> np.ndarray:
    target = cache / f"phash-v2-{len(paths)}.npz"  # v2: light artwork onto black
    names = np.array([str(p) for p in paths])
    if target.exists():
        z = np.load(target)
        if np.array_equal(z["names"], names):
            return z["codes"]
    codes = _phashes(paths)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, names=names, codes=codes)
    return codes


def series(files: dict[str, list[Path]], cache: Path) -> dict[str, int]:
    """``{str(path): series id}`` for every file; cached in ``cache/series.json``."""
    import hashlib

    listed = SHARED.read_bytes() if SHARED.exists() else b""
    target = cache / f"series-v6-{hashlib.sha256(listed).hexdigest()[:8]}.json"
    paths = [p for ps in files.values() for p in ps]
    if target.exists():
        data = json.loads(target.read_text())
        if set(data) == {str(p) for p in paths}:
            return data
    parent = list(range(len(paths)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    offset = 0
    for ps in files.values():
        members: dict[str, list[int]] = {}
        for k, p in enumerate(ps):
            for t in tokens(p):
                members.setdefault(t, []).append(offset + k)
        for k, p in enumerate(ps):
            members.setdefault("name:" + _name(p), []).append(offset + k)
            letters = re.sub(r"[^a-z]+", "", _name(p))
            if len(letters) >= MIN_TOKEN:
                members.setdefault("letters:" + letters, []).append(offset + k)
            if CARD.fullmatch(_name(p)):
                members.setdefault("cards", []).append(offset + k)
        for key, idx in members.items():
            if len(idx) <= MAX_TOKEN_FILES or ":" in key or key == "cards":
                for j in idx[1:]:
                    union(idx[0], j)
        offset += len(ps)
    where = {str(p): i for i, p in enumerate(paths)}
    for members in _shared_members(files).values():
        for p in members[1:]:
            union(where[str(members[0])], where[str(p)])
    codes = _cached_phashes(paths, cache)
    ident = codes[:, 0, :]
    for i in range(len(paths)):
        if not codes[i].any():
            continue
        dist = (codes[i + 1:] != ident[i]).sum(axis=2).min(axis=1)
        for j in np.flatnonzero(dist <= MAX_BITS):
            union(i, i + 1 + int(j))
    data = {str(p): find(i) for i, p in enumerate(paths)}
    cache.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data))
    return data
