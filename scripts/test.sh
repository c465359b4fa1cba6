#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite on real images, offline.
# Browser tests drive Debian's Chromium (no browser download); it is installed
# here when missing and we are root, otherwise those tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
     --no-install-recommends chromium >/dev/null) \
    || echo "chromium could not be installed; browser tests will be skipped"
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
