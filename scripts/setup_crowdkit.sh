#!/usr/bin/env bash
# crowd-kit 1.4.2, the reference the Dawid-Skene test (tests/test_quality.py) checks --combine ds against, in its own
# folder .crowdkit/ (git-ignored), as scripts/setup.sh does for ppi_py. Never a dependency of owleval.
# --no-deps: a full install pulls transformers, torch and its own pandas/numpy; DawidSkene needs only what the
# project's .venv already has (numpy, pandas, scikit-learn, scipy, tqdm) plus attrs, and crowdkit.aggregation
# imports nltk at import time. Measured here: 16 MB, under a minute. The test appends .crowdkit to sys.path after the
# project's own paths and is skipped when crowdkit cannot be imported.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "no .venv: run bash scripts/setup.sh first" >&2; exit 1; }
.venv/bin/python -m pip install -q --no-deps --target .crowdkit "crowd-kit==1.4.2" "attrs" "nltk"
.venv/bin/python -W ignore -c "import sys; sys.path.append('.crowdkit'); from crowdkit.aggregation import DawidSkene; print('crowd-kit ok:', DawidSkene.__module__)"
