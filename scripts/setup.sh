#!/usr/bin/env bash
# Create .venv and install tunelab with its test tools. Safe to re-run: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# An unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU build this machine keeps on disk.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[dev]"
