"""Every table command stays readable in an 80-column terminal and in a pipe.

One deployment (three protected photos under a deep folder, four candidates, two
violations found on the web) is checked once; each command's output at 80 columns is
then held to structural rules rather than golden text: no line wider than 80, no word of
a fixed vocabulary (verdicts, statuses, stages, the collection, the file names) broken
across lines inside a column, and the key facts (file names, sha256 prefixes) whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import ImageOps
from typer.testing import CliRunner

import monitor
from monitor.cli import app
from tests.conftest import skimage_photo

WIDTH = 80
runner = CliRunner(env={"COLUMNS": str(WIDTH)})

GALLERY = {"astronaut": "astronaut-portrait.png", "coffee": "coffee-cup-2024.png",
           "chelsea": "chelsea-the-cat.png"}
CANDIDATES = ("astro-crop-reupload.jpg", "coffee-small-copy.jpg", "camera-man.jpg",
              "empty-download.jpg")
URLS = ("https://pirate.example/img/uploads/2024/06/astro.jpg",
        "https://copycat.example/c/coffee-small.jpg")
VOCABULARY = ("violation", "review", "allowed", "clean", "error", "open", "confirmed",
              "dismissed", "licensed", "portfolio", "descriptor", "unavailable", "available",
              *GALLERY.values(), *CANDIDATES)
RULE_LINE = re.compile(r"^[\s━┏┓┳┗┛┻┡┩╇─└┘┴┌┐┬├┤┼]*$")


def columns(output: str) -> dict[object, list[str]]:
    """The text of ``output`` by column, top to bottom: a table line is cut at its
    vertical borders; a line without borders is one column of its own."""
    cols: dict[object, list[str]] = defaultdict(list)
    for line in output.splitlines():
        if RULE_LINE.match(line):
            continue
        cells = re.split("[│┃]", line)
        if len(cells) == 1:
            cols["text"].append(line.strip())
        else:
            for i, cell in enumerate(cells):
                cols[(len(cells), i)].append(cell.strip())
    return cols


def broken_words(output: str, words=VOCABULARY) -> list[str]:
    """Words found in a column's text once its line breaks are removed more often than
    on its lines: split across two lines ("violati" / "on")."""
    broken = []
    for frags in columns(output).values():
        joined = "".join(frags)
        broken += [w for w in words if joined.count(w) > sum(f.count(w) for f in frags)]
    return broken


def assert_readable(output: str, whole: tuple[str, ...] = ()) -> list[str]:
    """No line over :data:`WIDTH`, no vocabulary word broken, each of ``whole`` on a line."""
    lines = output.splitlines()
    assert lines, "no output"
    wide = [line for line in lines if len(line) > WIDTH]
    assert not wide, "\n".join(wide)
    assert not broken_words(output), (broken_words(output), output)
    for fact in whole:
        assert any(fact in line for line in lines), (fact, output)
    return lines


def cli(*args: str, code: int = 0):
    res = runner.invoke(app, list(args))
    assert res.exit_code == code, (args, res.output, res.exception)
    return res


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A deployment whose paths are long: protected photos, local candidates, web finds."""
    from monitor.config import load_settings
    from monitor.services.workspace import Workspace
    from tests.violations_data import copy_of, record

    root = tmp_path_factory.mktemp("width") / "home" / "alice-the-photographer"
    gallery = root / "Pictures" / "portfolio-2024-summer-collection" / "originals"
    found = root / "Downloads" / "found-on-suspicious-sites"
    gallery.mkdir(parents=True)
    found.mkdir(parents=True)
    photos = {n: skimage_photo(n) for n in GALLERY}
    for name, file in GALLERY.items():
        photos[name].save(gallery / file)
    photos["astronaut"].crop((100, 60, 420, 400)).save(found / CANDIDATES[0], quality=75)
    coffee = photos["coffee"]
    ImageOps.contain(coffee, (300, 300)).save(found / CANDIDATES[1], quality=85)
    skimage_photo("camera").save(found / CANDIDATES[2])
    (found / CANDIDATES[3]).write_bytes(b"")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("MONITOR_CONFIG", raising=False)
        (root / "config.toml").write_text("[clip]\nenabled = false\n")
        cli("gallery", "add", str(gallery), "--collection", "portfolio")
        ws = Workspace(load_settings())
        record(ws, URLS[0], copy_of(photos["astronaut"]), page="https://pirate.example/p.html")
        record(ws, URLS[1], copy_of(coffee, 0.8, 0.9))
        cli("violations", "set-status", "1", "confirmed", "--note", "reported to the host",
            "--actor", "alice")
        yield {"root": root, "gallery": gallery, "found": found}


def test_check_table(site) -> None:
    res = cli("check", str(site["found"]), code=3)  # 3: the empty download
    lines = assert_readable(res.stdout, ("violation", "clean", "error", *CANDIDATES,
                                         GALLERY["astronaut"], GALLERY["coffee"]))
    assert any("0 bytes" in line for line in lines)


def test_check_csv_and_jsonl(site) -> None:
    res = cli("check", str(site["found"]), "--format", "csv", code=3)
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == set(CANDIDATES)
    assert by_name[CANDIDATES[0]]["verdict"] == "violation"
    assert Path(by_name[CANDIDATES[0]]["gallery_path"]).name == GALLERY["astronaut"]
    assert by_name[CANDIDATES[2]]["verdict"] == "clean" and not by_name[CANDIDATES[2]]["stage"]
    assert "0 bytes" in by_name[CANDIDATES[3]]["error"]
    jsonl = cli("check", str(site["found"] / CANDIDATES[0]), "--format", "jsonl").stdout
    assert json.loads(jsonl)["verdict"] == "violation"


def test_scan_table(site) -> None:
    res = cli("scan", str(site["found"]), "--no-report", code=3)
    assert_readable(res.stdout, ("violation", "error", CANDIDATES[0], CANDIDATES[1],
                                 CANDIDATES[3], GALLERY["coffee"]))
    assert CANDIDATES[2] not in res.stdout  # the table lists what was flagged
    assert_readable(res.stderr, ("2 violations",))


def test_gallery_list(site) -> None:
    res = cli("gallery", "list")
    prefixes = [sha(site["gallery"] / f)[:12] for f in GALLERY.values()]
    lines = assert_readable(res.stdout, ("portfolio", *GALLERY.values(), *prefixes))
    for name, prefix in zip(GALLERY.values(), prefixes, strict=True):  # one row per image
        assert any(name in line and prefix in line for line in lines), (name, res.stdout)
    assert any(str(site["root"])[:8] in line for line in lines)  # the path keeps its start


def test_gallery_list_csv_and_jsonl(site) -> None:
    rows = list(csv.DictReader(io.StringIO(cli("gallery", "list", "--format", "csv").stdout)))
    assert {Path(r["path"]).name for r in rows} == set(GALLERY.values())
    assert {r["sha256"] for r in rows} == {sha(site["gallery"] / f) for f in GALLERY.values()}
    assert {r["collection"] for r in rows} == {"portfolio"}
    objs = [json.loads(x) for x in cli("gallery", "list", "--format", "jsonl").stdout.splitlines()]
    assert [o["id"] for o in objs] == [int(r["id"]) for r in rows]
    assert all(o["path"] == r["path"] for o, r in zip(objs, rows, strict=True))


def test_violations_list(site) -> None:
    res = cli("violations", "list")
    lines = assert_readable(res.stdout, ("violation", "open", "confirmed", "astro.jpg",
                                         "coffee-small.jpg", CANDIDATES[0], CANDIDATES[1],
                                         GALLERY["astronaut"], GALLERY["coffee"]))
    assert any("pirate.example" in line for line in lines)  # a URL keeps its host


def test_violations_list_csv(site) -> None:
    res = cli("violations", "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {r["source"] for r in rows} >= set(URLS)
    assert {r["status"] for r in rows} == {"open", "confirmed"}
    assert all(len(r["protected_sha256"]) == 64 for r in rows)


def test_violations_show(site) -> None:
    protected = site["gallery"] / GALLERY["astronaut"]
    res = cli("violations", "show", "1")
    lines = assert_readable(res.stdout, ("violation", "confirmed", "portfolio", "alice",
                                         GALLERY["astronaut"], sha(protected), URLS[0]))
    assert "…" not in res.stdout  # nothing cut: every path and hash whole
    flat = "".join(line.strip() for line in lines)
    assert str(protected) in flat  # the path wraps between its folders, all of it shown


def test_doctor(site) -> None:
    res = cli("doctor")
    assert_readable(res.stdout, ("stage descriptor", "stage clip", "monitor.db",
                                 "config.toml", "portfolio: 3 image(s)"))
    assert "…" not in res.stdout
    flat = "".join(line.strip(" │") for line in res.stdout.splitlines())
    assert str(site["root"] / "data" / "monitor.db") in flat


def test_a_pipe_gets_80_readable_columns(site) -> None:
    """Through a real pipe (no terminal, no COLUMNS) Rich renders 80 columns."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(Path(monitor.__file__).parents[1])  # the monitor under test
    for args in (["violations", "list"], ["gallery", "list"]):
        run = subprocess.run([sys.executable, "-m", "monitor", *args], cwd=site["root"],
                             env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=120, check=True)
        assert_readable(run.stdout, (GALLERY["astronaut"],))


@pytest.mark.parametrize(("text", "width", "shown"), [
    ("/home/alice/Pictures/2024/photos/IMG_0042.jpg", 29, "/home/al…/photos/IMG_0042.jpg"),
    ("/home/alice/Pictures/2024/photos/IMG_0042.jpg", 20, "/home/…/IMG_0042.jpg"),
    ("/home/alice/Pictures/2024/photos/IMG_0042.jpg", 13, "…IMG_0042.jpg"),
    ("/home/alice/IMG_0042.jpg", 24, "/home/alice/IMG_0042.jpg"),
    ("https://pirate.example/img/uploads/2024/06/astro.jpg", 27, "pirate.example/i…/astro.jpg"),
    ("astronaut_cropped_reupload.jpg", 16, "astrona…load.jpg"),
])
def test_shorten_middle_keeps_the_start_and_the_file_name(text: str, width: int,
                                                          shown: str) -> None:
    from monitor.cli.view import shorten_middle

    assert shorten_middle(text, width) == shown
    for w in range(0, len(text) + 2):
        assert len(shorten_middle(text, w)) <= w


def test_wrapped_breaks_between_folders_and_folds_only_what_cannot_fit() -> None:
    from rich.console import Console

    from monitor.cli.view import Wrapped

    console = Console(width=24, file=io.StringIO())
    path = "/srv/monitor/data/evidence/ab/" + "f" * 30 + ".jpeg"
    with console.capture() as cap:
        console.print(Wrapped(f"stored at {path} ok"))
    lines = cap.get().splitlines()
    assert lines[:3] == ["stored at /srv/monitor/", "data/evidence/ab/", "f" * 24]
    assert "".join(lines).replace(" ", "") == f"storedat{path}ok"  # nothing lost
