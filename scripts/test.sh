#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite on real images, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
