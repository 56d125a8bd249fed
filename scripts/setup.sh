#!/usr/bin/env bash
# Set up OwlEval for development and tests: a virtual environment in .venv with the CPU build of torch,
# the package (editable) with its test extras, and the system programs some tests drive (Java for the
# legacy metrics, Chromium for the browser tests) when they are missing and apt-get is available.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: please install ${missing[*]} (legacy metrics need Java, browser tests need Chromium)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: this version resolves to the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# test includes the docs extra (MkDocs + Material): a test builds the docs site with --strict
.venv/bin/python -m pip install -q -e ".[test]"
# ppi_py, the reference the PPI equality test checks against, in its own folder (git-ignored): --no-deps, because
# a full install brings its own numpy/pandas/scipy (~650 MB); the test appends .ppi_py to sys.path *after* the
# project's own paths, so ppi-python's top-level `tests` package cannot shadow ours. Importing ppi_py needs numba
# (with llvmlite) and statsmodels (with patsy) at import time, even for the mean: those four come along, also
# --no-deps, on top of the venv's numpy/scipy/pandas/scikit-learn (~275 MB in all).
.venv/bin/python -m pip install -q --no-deps --target .ppi_py "ppi-python==0.2.3" numba llvmlite statsmodels patsy
# Inspect AI in a venv of its own (~325 MB, ~30 s, no torch), for the bridge test that runs the exported task end to
# end (tests/test_bridges_inspect.py); OwlEval never imports it, and its pins stay out of the project's venv.
[ -x .venv-inspect/bin/python ] || "$PYTHON" -m venv .venv-inspect
.venv-inspect/bin/python -m pip install -q "inspect-ai==0.3.285"
.venv/bin/owleval --help >/dev/null
echo "ok: run the tests with .venv/bin/python -m pytest"
