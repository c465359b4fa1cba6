#!/usr/bin/env bash
# More real images for distractor queries only (never protected), from Debian packages
# whose artwork the main corpus (../shared/corpus/build.sh) does not hold: painted game
# portraits and maps, textures, wallpapers. With ~900 distractors a split cannot show a
# false-positive rate of 1e-3 (none flagged bounds it only below 0.33 %); these add
# thousands more.
#   usage: bench/distractors.sh [OUT_DIR]      (default: /tmp/monitor-distractors)
# Writes OUT_DIR/images/<source>/<name> (raster files, short side >= 128 px, de-duplicated
# by content) and OUT_DIR/manifest.csv (path,source,package,license), like build.sh.
# Needs root (apt-get) and python3 with Pillow. Re-running is cheap and idempotent.
set -euo pipefail
out=${1:-/tmp/monitor-distractors}
pkgs="wesnoth-1.16-data hedgewars-data neverball-data extremetuxracer-data lincity-ng-data
      pingus-data frozen-bubble-data gnome-backgrounds desktop-base"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
mkdir -p "$out/images"
python3 - "$out" <<'PY'
import csv, hashlib, os, shutil, sys
from PIL import Image
out = sys.argv[1]
Image.MAX_IMAGE_PIXELS = 60_000_000
roots = [  # (source name, package, licence as its copyright file states, folder)
    ("wesnoth", "wesnoth-1.16-data", "GPL-2+", "/usr/share/games/wesnoth"),
    ("hedgewars", "hedgewars-data", "GPL-2 / CC-BY-SA / FDL", "/usr/share/games/hedgewars"),
    ("neverball", "neverball-data", "GPL-2+ / public domain", "/usr/share/games/neverball"),
    ("etr", "extremetuxracer-data", "GPL-2+", "/usr/share/games/etr"),
    ("lincity", "lincity-ng-data", "GPL-2+", "/usr/share/games/lincity-ng"),
    ("pingus", "pingus-data", "GPL-3+", "/usr/share/games/pingus"),
    ("frozenbubble", "frozen-bubble-data", "GPL-2", "/usr/share/games/frozen-bubble"),
    ("gnome", "gnome-backgrounds", "CC-BY-SA / GPL-2+", "/usr/share/backgrounds"),
    ("debian", "desktop-base", "GPL / CC-BY-SA", "/usr/share/desktop-base"),
]
seen, rows = set(), []
for name, pkg, lic, root in roots:
    dest = os.path.join(out, "images", name)
    os.makedirs(dest, exist_ok=True)
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                continue
            src = os.path.join(dirpath, f)
            try:
                data = open(src, "rb").read()
                digest = hashlib.md5(data).hexdigest()
                if digest in seen:
                    continue
                with Image.open(src) as im:
                    if min(im.size) < 128:
                        continue
            except Exception:
                continue
            seen.add(digest)
            target = os.path.join(dest, f"{digest[:10]}_{f}")
            if not os.path.exists(target):
                shutil.copyfile(src, target)
            rows.append((os.path.relpath(target, out), name, pkg, lic))
with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["path", "source", "package", "license"])
    w.writerows(rows)
counts = {}
for r in rows:
    counts[r[1]] = counts.get(r[1], 0) + 1
print(f"{len(rows)} images in {out}:", ", ".join(f"{k} {v}" for k, v in counts.items()))
PY
