#!/usr/bin/env bash
# A virtual environment with lmms-eval for the bridge check (tests/integration/test_lmms_eval_bridge.py).
# About 7 GB and 5 minutes: lmms-eval's dependencies pull a CUDA build of torch even with the CPU wheel installed
# first; it still runs on the CPU. Never part of .ci/run. Usage: bash scripts/setup_lmms_eval.sh [VENV_DIR]
# Then: OWLEVAL_LMMS_EVAL_VENV=VENV_DIR .venv/bin/python -m pytest tests/integration/test_lmms_eval_bridge.py
#
# Pins: lmms-eval 0.7.3 fails at start with filelock >= 4 (`filelock._api`, in evaluator._enable_reentrant_filelocks).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-lmms}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q "lmms-eval==0.7.3" "filelock<4"
"$VENV/bin/python" -c "import importlib.metadata as m; print('lmms-eval', m.version('lmms-eval'), 'filelock', m.version('filelock'))"
