"""HTML report: rows in the store → one self-contained file with the match drawn in pixels."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sqlmodel import select

from monitor.config import load_settings
from monitor.errors import NotFound
from monitor.outcome.report import MARK_COLOUR, query_items, write_report
from monitor.services.workspace import Workspace
from monitor.store.models import (
    Candidate,
    MatchRow,
    ProtectedImage,
    Scan,
    Violation,
)

THUMB = 320
FOUND_SIZE = (1000, 800)
# The protected image pasted (slightly warped) into the found image: corners in original pixels.
QUAD = [[300.0, 200.0], [720.0, 230.0], [700.0, 620.0], [280.0, 600.0]]
REGION = [280, 200, 720, 620]
NOTE = "clip unavailable: weights not cached (set clip.checkpoint or allow hub access)"


class _Imgs(HTMLParser):
    """Collects ``<img>`` attributes and ``data-kind`` placeholders."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str]] = []
        self.placeholders: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.imgs.append(a)
        elif "placeholder" in a.get("class", ""):
            self.placeholders.append(a.get("data-kind", ""))


def parse(html: str) -> _Imgs:
    p = _Imgs()
    p.feed(html)
    return p


def decode_uri(src: str) -> Image.Image:
    m = re.fullmatch(r"data:image/(jpeg|png);base64,([A-Za-z0-9+/=]+)", src)
    assert m, src[:60]
    im = Image.open(io.BytesIO(base64.b64decode(m.group(2))))
    im.load()
    return im.convert("RGB")


def near_mark(arr: np.ndarray, tol: float = 70.0) -> np.ndarray:
    """Boolean mask of pixels within ``tol`` (RGB Euclidean) of the mark colour."""
    return np.linalg.norm(arr.astype(float) - np.array(MARK_COLOUR, float), axis=-1) < tol


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _save(root: Path, rel: str, payload: bytes) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def found_image() -> Image.Image:
    """Coffee background (1000×800) with the astronaut pasted inside QUAD's bounding box."""
    bg = Image.fromarray(skdata.coffee()).resize(FOUND_SIZE)
    size = (REGION[2] - REGION[0], REGION[3] - REGION[1])
    astro = Image.fromarray(skdata.astronaut()).resize(size)
    bg.paste(astro, (REGION[0], REGION[1]))
    return bg


def make_ws(root: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> Workspace:
    monkeypatch.chdir(root)
    (root / "config.toml").write_text(f"[report]\nthumb_side = {THUMB}\n{extra}")
    return Workspace(load_settings(root / "config.toml"))


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return make_ws(tmp_path, monkeypatch)


def add_violation(ws: Workspace, *, quad: list | None = QUAD, region: list | None = REGION,
                  evidence: bool = True, status: str = "open", note: str = NOTE,
                  source: str = "https://pirate.example/img/astro.png",
                  page_url: str | None = "https://pirate.example/gallery.html",
                  collection: str = "portfolio", verdict: str = "violation") -> int:
    """Insert a scan, protected image, candidate, match and violation; returns the violation id."""
    protected = _png(Image.fromarray(skdata.astronaut()))
    p_sha = hashlib.sha256(protected).hexdigest()
    p_rel = f"gallery/{p_sha[:2]}/{p_sha}.png"
    _save(ws.data_dir, p_rel, protected)
    found = _png(found_image())
    f_sha = hashlib.sha256(found).hexdigest()
    f_rel = f"evidence/{f_sha[:2]}/{f_sha}.png"
    if evidence:
        _save(ws.data_dir, f_rel, found)
    with ws.session() as s:
        col = ws.collection(s, collection, create=True)
        p = s.exec(select(ProtectedImage).where(ProtectedImage.sha256 == p_sha,
                                                ProtectedImage.collection_id == col.id)).first()
        if p is None:
            row = ProtectedImage(collection_id=col.id, path="/photos/astronaut.png",
                                 stored_path=p_rel, sha256=p_sha, size_bytes=len(protected),
                                 width=512, height=512, format="PNG", phash="00" * 64,
                                 meta_json=json.dumps({"title": "Astronaut", "owner": "NASA"}))
            s.add(row)
            s.flush()
            p_id = row.id
        else:
            p_id = p.id
        scan = Scan(source="https://pirate.example/", kind="page", stages_note=note,
                    status="finished", checked=1, violations=1)
        s.add(scan)
        s.flush()
        cand = Candidate(scan_id=scan.id, source=source, page_url=page_url, sha256=f_sha,
                         width=FOUND_SIZE[0], height=FOUND_SIZE[1], format="PNG",
                         evidence_path=f_rel, status="checked", verdict=verdict)
        s.add(cand)
        s.flush()
        m = MatchRow(candidate_id=cand.id, protected_id=p_id, stage="local", score=0.97,
                     distance=3, cosine=0.934, inliers=142, agreement=0.875, mirrored=True,
                     region_json=json.dumps(region) if region else None,
                     quad_json=json.dumps(quad) if quad else None)
        s.add(m)
        s.flush()
        v = Violation(match_id=m.id, candidate_id=cand.id, protected_id=p_id, verdict=verdict,
                      rule="copy", severity="high", status=status)
        s.add(v)
        s.commit()
        return v.id


def edge_points(corners: list[list[float]], scale: float, n: int = 12) -> list[tuple[int, int]]:
    """Points along each edge of a closed polygon, scaled to thumbnail pixels (corners skipped)."""
    pts = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        for t in np.linspace(0.1, 0.9, n):
            pts.append((round((x0 + t * (x1 - x0)) * scale), round((y0 + t * (y1 - y0)) * scale)))
    return pts


def assert_outline(im: Image.Image, corners: list[list[float]]) -> None:
    """The mark colour is on every sampled edge point and absent from the image's corners."""
    arr = np.asarray(im)
    mask = near_mark(arr)
    scale = im.width / FOUND_SIZE[0]
    missing = [(x, y) for x, y in edge_points(corners, scale)
               if not mask[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any()]
    assert not missing, f"outline colour absent at {missing[:5]}"
    for ys, xs in ((slice(0, 40), slice(0, 40)), (slice(0, 40), slice(-40, None)),
                   (slice(-40, None), slice(0, 40)), (slice(-40, None), slice(-40, None))):
        assert not mask[ys, xs].any(), "outline colour found far from the matched area"
    centre = mask[int(arr.shape[0] * 0.45):int(arr.shape[0] * 0.55),
                  int(arr.shape[1] * 0.45):int(arr.shape[1] * 0.55)]
    assert not centre.any(), "outline drawn filled, not as an outline"


def test_report_shows_both_images_evidence_and_drawn_quad(ws: Workspace) -> None:
    add_violation(ws)
    path = write_report(ws)
    assert path.parent == ws.report_dir
    assert re.fullmatch(r"report-\d{8}-\d{6}\.html", path.name)
    html = path.read_text(encoding="utf-8")
    imgs = {a["data-kind"]: a for a in parse(html).imgs}
    assert set(imgs) == {"protected", "found"}
    protected, found = decode_uri(imgs["protected"]["src"]), decode_uri(imgs["found"]["src"])
    assert protected.size == (THUMB, THUMB)
    assert found.size == (THUMB, THUMB * FOUND_SIZE[1] // FOUND_SIZE[0])
    assert_outline(found, QUAD)
    assert not near_mark(np.asarray(protected)).any(), "protected image must stay unmarked"
    for words in ("pHash Hamming distance 3 of 64 bits", "cosine similarity 0.93",
                  "142 RANSAC inliers", "mirrored copy",
                  "88% of the textured cells of the protected image agree",
                  "0.97", "copy", "high", "open",
                  '<a href="https://pirate.example/img/astro.png">',
                  '<a href="https://pirate.example/gallery.html">', "Astronaut", "NASA"):
        assert words in html, words
    with ws.session() as s:
        cand, prot = s.get(Candidate, 1), s.get(ProtectedImage, 1)
    assert cand.sha256 in html and prot.sha256 in html
    assert NOTE in html and 'role="alert"' in html
    assert "No violations" not in html
    assert "http://" not in html.replace("http-equiv", "") and "<link" not in html
    assert "@media print" in html


def test_region_box_drawn_when_no_quad(ws: Workspace) -> None:
    add_violation(ws, quad=None)
    found = decode_uri({a["data-kind"]: a for a in parse(write_report(ws).read_text()).imgs}
                       ["found"]["src"])
    x0, y0, x1, y1 = REGION
    assert_outline(found, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def test_quad_scaled_from_original_not_working_copy(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Working copy (500 px) smaller than the original (1000 px): coordinates still land."""
    ws = make_ws(tmp_path, monkeypatch, "[decode]\nwork_side = 500\n")
    add_violation(ws)
    found = decode_uri({a["data-kind"]: a for a in parse(write_report(ws).read_text()).imgs}
                       ["found"]["src"])
    assert_outline(found, QUAD)


def test_missing_evidence_renders_placeholder(ws: Workspace) -> None:
    add_violation(ws, evidence=False)
    (ws.data_dir / "gallery").rename(ws.data_dir / "gone")
    html = write_report(ws).read_text()
    doc = parse(html)
    assert doc.imgs == []
    assert sorted(doc.placeholders) == ["found", "protected"]
    assert "evidence file missing: evidence/" in html
    assert "stored protected copy missing: gallery/" in html
    assert "142 RANSAC inliers" in html


def test_altered_evidence_is_flagged(ws: Workspace) -> None:
    add_violation(ws)
    with ws.session() as s:
        rel = s.get(Candidate, 1).evidence_path
    (ws.data_dir / rel).write_bytes(_png(found_image().rotate(1)))
    html = write_report(ws).read_text()
    assert "evidence file altered" in html
    assert len(parse(html).imgs) == 2


def test_empty_report(ws: Workspace, tmp_path: Path) -> None:
    out = write_report(ws, out=tmp_path / "empty.html")
    html = out.read_text()
    assert out == tmp_path / "empty.html"
    assert "No violations" in html and parse(html).imgs == []


def test_filters_and_ordering(ws: Workspace) -> None:
    open_id = add_violation(ws, status="open")
    add_violation(ws, status="dismissed", source="/srv/uploads/b.png", page_url=None)
    review_id = add_violation(ws, verdict="review", source="/srv/uploads/c.png", page_url=None,
                              collection="catalogue", note="")
    with ws.session() as s:
        assert [i.violation_id for i in query_items(s)][0] == open_id
        assert [i.violation_id for i in query_items(s)][-1] == review_id
        assert len(query_items(s, status=["open"])) == 2
        assert [i.violation_id for i in query_items(s, collection="catalogue")] == [review_id]
        assert [i.violation_id for i in query_items(s, scan_id=1)] == [open_id]
    html = write_report(ws, status=["dismissed"]).read_text()
    assert "/srv/uploads/b.png" in html and "pirate.example/img" not in html
    assert 'href="/srv' not in html
    with pytest.raises(NotFound):
        write_report(ws, scan_id=999)


def test_untrusted_strings_are_escaped_and_not_linked(ws: Workspace) -> None:
    add_violation(ws, source="javascript:alert(1)", page_url='https://x.example/"><script>x</script>')
    html = write_report(ws).read_text()
    assert "<script>" not in html
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;" in html
