#!/usr/bin/env bash
# The main job on real images with the embedded defaults (SQLite and files under
# demo/data): set up, register a gallery, check edited copies mixed with
# unrelated images, print the summary and write an HTML report to demo/reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}  # no hub here; CLIP reports itself unavailable
corpus=""
if [ -x ../shared/corpus/build.sh ] && [ "$(id -u)" = 0 ]; then
  echo "demo: installing Debian packages of real images (opencv-doc, mate-backgrounds," \
       "plasma-workspace-wallpapers, openclipart-png, stellarium-data) and copying them" \
       "to /tmp/monitor-corpus; log in /tmp/monitor-corpus.log"
  PATH="$PWD/.venv/bin:$PATH" ../shared/corpus/build.sh /tmp/monitor-corpus \
    >/tmp/monitor-corpus.log 2>&1 \
    && corpus="--corpus /tmp/monitor-corpus" || echo "corpus build skipped; using scikit-image photos only"
fi
[ -d demo ] && echo "demo: replacing the previous demo/ folder (its database, report and copies)"
rm -rf demo && .venv/bin/python scripts/make_demo.py demo $corpus
cd demo
../.venv/bin/monitor init
../.venv/bin/monitor gallery add gallery --collection portfolio --meta owner=demo
status=0
../.venv/bin/monitor scan candidates || status=$?
# 3: some candidates could not be checked (listed above and recorded); anything else fails
[ "$status" = 0 ] || [ "$status" = 3 ] || exit "$status"
# How the scan did against the demo's answer key (demo/truth.csv)
../.venv/bin/monitor violations list --format jsonl | ../.venv/bin/python ../scripts/demo_score.py truth.csv
