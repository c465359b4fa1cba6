"""Descriptor stage speed: bare onnxruntime vs the stage, and what a candidate costs.

    python -m bench.descriptor_speed [--corpus DIR] [--images 64] [--batch 16]
                                     [--gallery 200] [--model sscd_distilled]

1. **Stage overhead.** The same decoded real images, the same batch size, one thread:
   (a) a bare ``onnxruntime.InferenceSession`` on preloaded ``uint8 (B, 320, 320, 3)``
   batches, (b) :meth:`DescriptorStage.compute` on the decoded images (its resize,
   batching and normalisation included). Prints images/s of both and b/a (issue 21's
   target: >= 0.9).
2. **Cost of a candidate, decode included.** An engine (hash, descriptor, local; no
   CLIP) over ``--gallery`` corpus images; candidates are (i) unrelated corpus images and
   (ii) edited copies of gallery images (``bench.edits`` crop and filter). Prints
   median and p90 milliseconds per candidate of each, from the bytes, single-threaded.

Figures go to stdout; bench/RESULTS.md quotes a run.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from pathlib import Path

import numpy as np

from bench import edits
from bench.dataset import corpus_files
from bench.detectors import fresh
from monitor.config import DescriptorSettings, Settings
from monitor.imaging.decode import decode_bytes
from monitor.matching.engine import Engine, GalleryEntry
from monitor.matching.stages import descriptor_model
from monitor.matching.stages.descriptor import DescriptorStage
from monitor.matching.stages.hash import HashStage


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.descriptor_speed",
                                description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("/tmp/monitor-corpus"))
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--gallery", type=int, default=200)
    p.add_argument("--candidates", type=int, default=40)
    p.add_argument("--model", default="sscd_distilled")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def overhead(stage: DescriptorStage, images: list, batch: int) -> tuple[float, float]:
    """(bare onnxruntime images/s, stage images/s), best of 3 runs each."""
    embed = stage._require()  # the same session object the stage runs
    side = stage.settings.side
    pixels = np.stack([stage._pixels(im, side) for im in images])
    batches = [pixels[i:i + batch] for i in range(0, len(pixels), batch)]
    name = embed.session.get_inputs()[0].name
    embed.session.run(None, {name: batches[0]})
    bare = stage_rate = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for b in batches:
            embed.session.run(None, {name: b})
        bare = max(bare, len(images) / (time.perf_counter() - t))
        fresh_images = [fresh(im) for im in images]  # empty resize caches: the stage pays
        t = time.perf_counter()
        for i in range(0, len(images), batch):
            stage.compute(fresh_images[i:i + batch])
        stage_rate = max(stage_rate, len(images) / (time.perf_counter() - t))
    assert pixels.shape[1:] == (side, side, 3)
    return bare, stage_rate


def _bytes(im) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def candidate_costs(files: list[Path], args: argparse.Namespace) -> dict[str, list[float]]:
    """Milliseconds per candidate (decode + match) for unrelated images and copies."""
    settings = Settings(clip={"enabled": False},
                        descriptor={"model": args.model})
    engine, hasher = Engine(settings), HashStage()
    gallery = files[:args.gallery]
    for gid, path in enumerate(gallery):
        image = decode_bytes(path.read_bytes())
        vec = engine.describe([image])
        engine.add(GalleryEntry(gid, hasher.compute_gallery(image), None, lambda i=image: i,
                                None if vec is None else vec[0]), image)
    from PIL import Image

    unrelated = [p.read_bytes() for p in files[args.gallery:args.gallery + args.candidates]]
    copies = [_bytes(edits.apply(Image.open(p).convert("RGB"), ("crop", "filter")[i % 2], i))
              for i, p in enumerate(gallery[:args.candidates])]
    out: dict[str, list[float]] = {}
    for kind, blobs in (("unrelated", unrelated), ("copy", copies)):
        for data in blobs:
            t = time.perf_counter()
            engine.match(decode_bytes(data))
            out.setdefault(kind, []).append(1000 * (time.perf_counter() - t))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import cv2
    import faiss

    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    files = sorted(p for group in corpus_files(args.corpus).values() for p in group)
    random.Random(args.seed).shuffle(files)
    stage = DescriptorStage(DescriptorSettings(model=args.model), Path("."))
    if not stage.ready():
        raise SystemExit(f"descriptor unavailable: {stage.status().reason}")
    images = [decode_bytes(p.read_bytes()) for p in files[:args.images]]
    bare, rate = overhead(stage, images, args.batch)
    path = descriptor_model.resolve(args.model, Path("."))
    print(f"model {args.model} ({path.name}), {len(images)} corpus images, batch {args.batch}, "
          "1 thread")
    print(f"bare onnxruntime: {bare:.1f} images/s; DescriptorStage.compute: {rate:.1f} "
          f"images/s; ratio {rate / bare:.2f}")
    costs = candidate_costs(files, args)
    for kind, ms in costs.items():
        q = statistics.quantiles(ms, n=10)
        print(f"{kind}: {len(ms)} candidates, median {statistics.median(ms):.0f} ms, "
              f"p90 {q[-1]:.0f} ms per candidate (decode + hash + descriptor + local), "
              f"gallery {args.gallery}")
    ratio = statistics.median(costs["copy"]) / statistics.median(costs["unrelated"])
    print(f"copy / unrelated median cost: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
