"""``scripts/demo_score.py`` scores violations against the demo's answer key."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import demo_score  # noqa: E402


def test_counts_copies_found_on_the_right_image_and_false_flags(tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("candidate,gallery,family\ncopy-a.jpg,a.png,crop\ncopy-b.jpg,b.png,heavy\n"
                     "copy-c.jpg,c.png,meme\nother-1.jpg,,\nother-2.jpg,,\n", encoding="utf-8")
    rows = [{"source": "candidates/copy-a.jpg", "protected_path": "/g/a.png"},
            {"source": "candidates/copy-c.jpg", "protected_path": "/g/b.png"},  # wrong image
            {"source": "candidates/other-2.jpg", "protected_path": "/g/a.png"}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(json.dumps(r) for r in rows)))
    assert demo_score.main(["demo_score.py", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 copies found" in out and "heavy 1, meme 1" in out
    assert "1 of 2 unrelated images flagged: other-2.jpg" in out
