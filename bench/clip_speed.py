"""CLIP stage throughput: raw ``model.encode_image`` vs :meth:`ClipStage.compute`.

For each model, prints images/s of (a) the forward pass alone on a preloaded,
already preprocessed batch and (b) ``ClipStage.compute`` on freshly decoded real
photos (reduction, the model's preprocess, batching, normalisation), both at the
same batch size and image count, and the ratio b/a (issue target: >= 0.90).

The tiny test model (``tests/clip_tiny``) always runs; ``--model`` adds a real
architecture. ``--pretrained ""`` gives it random weights, which costs the same
per forward pass as the real ones, so speed can be measured offline::

    python bench/clip_speed.py --model ViT-B-32 --pretrained "" --batch-size 32

Images: the photos shipped with ``skimage.data`` or ``--images DIR``.
Decoding (``monitor.imaging.decode``) happens before each timed run and is not counted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from monitor.config import ClipSettings
from monitor.imaging.decode import DecodedImage, decode_bytes
from monitor.matching.stages.clip import ClipStage

TINY_DIR = Path(__file__).resolve().parent.parent / "tests" / "clip_tiny"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png",
                  "hubble_deep_field.jpg", "ihc.png", "coins.png", "moon.png",
                  "motorcycle_left.png", "retina.jpg", "horse.png", "page.png", "brick.png")


def load_bytes(folder: Path | None, count: int) -> list[bytes]:
    """``count`` encoded images, cycling through the folder (or skimage photos) as needed."""
    if folder is None:
        import skimage.data

        folder = Path(skimage.data.data_dir)
        paths = [folder / n for n in SKIMAGE_PHOTOS if (folder / n).is_file()]
    else:
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise SystemExit(f"no images found in {folder}")
    blobs = [p.read_bytes() for p in paths]
    return [blobs[i % len(blobs)] for i in range(count)]


def time_raw(stage: ClipStage, images: list[DecodedImage], repeats: int) -> float:
    """Best images/s of ``encode_image`` over preloaded, preprocessed batches."""
    import torch

    loaded = stage.require()
    bs = stage.settings.batch_size
    tensors = torch.stack([loaded.preprocess(im.image) for im in images])
    batches = [tensors[i:i + bs] for i in range(0, len(images), bs)]
    best = float("inf")
    with torch.inference_mode():
        loaded.model.encode_image(batches[0])  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            for batch in batches:
                loaded.model.encode_image(batch)
            best = min(best, time.perf_counter() - t0)
    return len(images) / best


def time_stage(stage: ClipStage, blobs: list[bytes], repeats: int) -> float:
    """Best images/s of ``ClipStage.compute`` on freshly decoded images (no cached copies)."""
    stage.compute([decode_bytes(b) for b in blobs[: stage.settings.batch_size]])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        images = [decode_bytes(b) for b in blobs]
        t0 = time.perf_counter()
        stage.compute(images)
        best = min(best, time.perf_counter() - t0)
    return len(blobs) / best


def bench(label: str, settings: ClipSettings, root: Path, blobs: list[bytes],
          repeats: int) -> None:
    """Print one row: label, batch size, raw img/s, stage img/s, ratio."""
    stage = ClipStage(settings, root)
    status = stage.status()
    if not status.available:
        print(f"{label:<28} unavailable: {status.reason} (fix: {status.fix})")
        return
    raw = time_raw(stage, [decode_bytes(b) for b in blobs], repeats)
    full = time_stage(stage, blobs, repeats)
    print(f"{label:<28} {settings.batch_size:>5} {raw:>10.1f} {full:>10.1f} {full / raw:>7.3f}")


def main() -> None:
    """Parse arguments and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="open_clip model name for a real-size run, e.g. ViT-B-32")
    ap.add_argument("--pretrained", default="laion2b_s34b_b79k",
                    help="pretrained tag; '' = random weights (same speed)")
    ap.add_argument("--checkpoint", default="", help="local weights file (overrides --pretrained)")
    ap.add_argument("--images", type=Path, help="folder of images (default: skimage.data photos)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=3, help="batches per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = ap.parse_args()

    blobs = load_bytes(args.images, args.batch_size * args.batches)
    print(f"{len(blobs)} images per run; images/s, best of {args.repeats}")
    print(f"{'model':<28} {'batch':>5} {'raw':>10} {'stage':>10} {'ratio':>7}")
    tiny = ClipSettings(model="monitor-tiny-vit", pretrained="", model_config_dir=str(TINY_DIR),
                        batch_size=args.batch_size)
    bench("monitor-tiny-vit (random)", tiny, TINY_DIR, blobs, args.repeats)
    if args.model:
        real = ClipSettings(model=args.model, pretrained=args.pretrained,
                            checkpoint=args.checkpoint, batch_size=args.batch_size)
        label = f"{args.model}/{args.checkpoint or args.pretrained or 'random'}"
        bench(label, real, Path.cwd(), blobs, args.repeats)


if __name__ == "__main__":
    main()
