"""``monitor background build`` on real photos, and the descriptor's evidence end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from monitor.cli import app
from monitor.matching.background import Background

runner = CliRunner()


def test_background_build_embeds_a_folder_and_the_stage_uses_it(deploy: Path, others,
                                                                photos) -> None:
    folder = deploy / "unrelated"
    folder.mkdir()
    for name, im in others.items():
        im.save(folder / f"{name}.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image")
    res = runner.invoke(app, ["background", "build", str(folder), "--out", "data/bg.npy"])
    assert res.exit_code == 0, res.output
    assert f"{len(others)} images embedded, 1 skipped" in res.output
    bg = Background.load(deploy / "data" / "bg.npy", 512)
    assert len(bg) == len(others) and np.allclose(np.linalg.norm(bg.vectors, axis=1), 1,
                                                  atol=1e-3)

    (deploy / "config.toml").write_text('[descriptor]\nbackground = "data/bg.npy"\n'
                                        '[clip]\nenabled = false\n', encoding="utf-8")
    doctor = runner.invoke(app, ["doctor"])
    assert f"normalised against {len(others)} background" in doctor.output, doctor.output

    gallery = deploy / "gallery"
    gallery.mkdir()
    for name, im in photos.items():
        im.save(gallery / f"{name}.png")
    assert runner.invoke(app, ["gallery", "add", "gallery"]).exit_code == 0
    name, im = next(iter(photos.items()))
    w, h = im.size
    im.crop((w // 8, h // 8, w - w // 8, h - h // 8)).save(deploy / "copy.jpg", quality=70)
    res = runner.invoke(app, ["check", "copy.jpg", "--format", "jsonl"])
    line = json.loads(res.output.strip().splitlines()[-1])
    top = line["matches"][0]
    assert top["gallery_path"].endswith(f"{name}.png")
    assert top["similarity"] > 0.5 and top["normalised"] < top["similarity"]


def test_background_build_refuses_a_missing_folder(deploy: Path) -> None:
    res = runner.invoke(app, ["background", "build", "nowhere"])
    assert res.exit_code != 0 and "is not a folder" in res.output
