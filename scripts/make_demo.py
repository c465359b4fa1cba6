"""Build the demo: a gallery of real images and a folder of candidates to check.

Usage: python scripts/make_demo.py OUT_DIR [--corpus DIR] [--per-source N]

Gallery: colour photos and artwork shipped in scikit-image's wheel (offline),
plus, when ``--corpus`` points at the folder ``shared/corpus/build.sh`` makes,
clip art, wallpapers and astrophotos from Debian packages. Candidates: one or
two DISC21-style edits (bench/edits.py, AugLy) of every gallery image, mixed
with unrelated real images that are not in the gallery. ``OUT_DIR/truth.csv``
records which candidate copies which gallery image.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.edits import FAMILIES, apply  # noqa: E402

GALLERY_SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                   "immunohistochemistry", "retina", "logo", "colorwheel")
UNRELATED_SKIMAGE = ("camera", "coins", "moon", "page", "text", "horse", "clock", "brick",
                     "grass", "gravel", "cell")


def flatten(im: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (as monitor's decoder does)."""
    im = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("RGB")


def skimage_images(names: tuple[str, ...]) -> dict[str, Image.Image]:
    """Named RGB images from ``skimage.data`` (bundled in the wheel; no download)."""
    import skimage.data

    out = {}
    for name in names:
        arr = getattr(skimage.data, name)()
        im = Image.fromarray(arr.astype(np.uint8))
        out[name] = flatten(im)
    return out


def corpus_images(corpus: Path, per_source: int,
                  rng: random.Random) -> tuple[list[Path], list[Path]]:
    """(gallery, unrelated) file lists drawn per source from a built corpus."""
    gallery, unrelated = [], []
    for source in sorted(p for p in (corpus / "images").iterdir() if p.is_dir()):
        files = sorted(source.iterdir())
        rng.shuffle(files)
        gallery += files[:per_source]
        unrelated += files[per_source:per_source * 2]
    return gallery, unrelated


def drop_near_copies(unrelated: dict[str, Image.Image], gallery: dict[str, Image.Image],
                     max_bits: int = 12) -> dict[str, Image.Image]:
    """Unrelated images minus those within ``max_bits`` (pHash) of a gallery image.

    Debian ships some wallpapers at several resolutions under unrelated file
    names; those are real copies, not distractors.
    """
    import imagehash

    refs = [imagehash.phash(im) for im in gallery.values()]
    return {n: im for n, im in unrelated.items()
            if min(imagehash.phash(im) - r for r in refs) > max_bits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--per-source", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    gdir, cdir = args.out / "gallery", args.out / "candidates"
    gdir.mkdir(parents=True, exist_ok=True)
    cdir.mkdir(parents=True, exist_ok=True)
    gallery = {f"{n}.png": im for n, im in skimage_images(GALLERY_SKIMAGE).items()}
    unrelated = {f"{n}.png": im for n, im in skimage_images(UNRELATED_SKIMAGE).items()}
    if args.corpus and (args.corpus / "images").is_dir():
        g, u = corpus_images(args.corpus, args.per_source, rng)
        gallery |= {f"{p.parent.name}-{p.stem[:40]}.png": flatten(Image.open(p)) for p in g}
        unrelated |= {f"{p.parent.name}-{p.stem[:40]}.png": flatten(Image.open(p)) for p in u}
    unrelated = drop_near_copies(unrelated, gallery)
    truth = []
    families = list(FAMILIES)
    for k, (name, im) in enumerate(sorted(gallery.items())):
        im.save(gdir / name)
        for j in range(2 if k % 2 == 0 else 1):
            family = families[(k + j * 3) % len(families)]
            edited = apply(im, family, seed=args.seed * 1000 + k * 10 + j)
            target = cdir / f"copy-{k:03d}-{family}.jpg"
            edited.convert("RGB").save(target, quality=85)
            truth.append((target.name, name, family))
    for k, (_, im) in enumerate(sorted(unrelated.items())):
        im.save(cdir / f"other-{k:03d}.jpg", quality=90)
        truth.append((f"other-{k:03d}.jpg", "", "unrelated"))
    with open(args.out / "truth.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("candidate", "gallery", "family"), *truth])
    print(f"demo: {len(gallery)} gallery images, {len(truth)} candidates "
          f"({sum(1 for t in truth if t[1])} edited copies) in {args.out}")


if __name__ == "__main__":
    main()
