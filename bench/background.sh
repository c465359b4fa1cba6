#!/usr/bin/env bash
# Images for the descriptor stage's score-normalisation background set, from Debian
# packages that neither the test corpus (../shared/corpus/build.sh) nor the benchmark's
# distractors (bench/distractors.sh) use, so no benchmark query is in the background:
# Tux Paint's stamps (clip art and photos), SuperTuxKart's textures and renders, and
# Widelands' painted game art. Then embeds them into the shipped background file.
#   usage: bench/background.sh [OUT_DIR] [MODEL]   (default: /tmp/monitor-background, both
#          built-in models)
# Writes OUT_DIR/images/<source>/<name> (short side >= 160 px, de-duplicated by content,
# at most PER_SOURCE per source, one in every few animation frames), OUT_DIR/manifest.csv
# and monitor/defaults/background-<model>.npy. Needs root (apt-get).
set -euo pipefail
out=${1:-/tmp/monitor-background}
models=${2:-"sscd_distilled sscd"}
cd "$(dirname "$0")/.."
pkgs="tuxpaint-stamps-default supertuxkart-data widelands-data"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
mkdir -p "$out/images"
.venv/bin/python - "$out" <<'PY'
import csv, hashlib, os, random, shutil, sys
from PIL import Image
out = sys.argv[1]
PER_SOURCE = 1200
roots = [("tuxpaint", "tuxpaint-stamps-default", "GPL-2+", "/usr/share/tuxpaint/stamps"),
         ("supertuxkart", "supertuxkart-data", "GPL-3+ / CC-BY-SA", "/usr/share/games/supertuxkart"),
         ("widelands", "widelands-data", "GPL-2+", "/usr/share/games/widelands")]
seen, rows = set(), []
for name, pkg, lic, root in roots:
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))
    random.Random(name).shuffle(files)
    dest = os.path.join(out, "images", name)
    os.makedirs(dest, exist_ok=True)
    kept = 0
    for src in files:
        if kept >= PER_SOURCE:
            break
        data = open(src, "rb").read()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        try:
            with Image.open(src) as im:
                if min(im.size) < 160:
                    continue
        except Exception:
            continue
        seen.add(digest)
        target = os.path.join(dest, digest[:16] + os.path.splitext(src)[1].lower())
        shutil.copyfile(src, target)
        rows.append((target, name, pkg, lic))
        kept += 1
    print(f"{name}: {kept} images", file=sys.stderr)
with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["path", "source", "package", "license"])
    w.writerows(rows)
PY
for m in $models; do
  MONITOR_DESCRIPTOR__MODEL=$m MONITOR_DESCRIPTOR__BACKGROUND=none \
    MONITOR_STORAGE__DATA_DIR="$out/data-$m" HF_HUB_OFFLINE=1 \
    .venv/bin/monitor background build "$out/images" --out "monitor/defaults/background-$m.npy"
done
