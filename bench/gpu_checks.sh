#!/usr/bin/env bash
# The GPU checks in one command, for a lent CUDA machine that has torch but no network and no owleval install:
# the CUDA-only tests, then bench_gpu.py (eager vs compiled decode at the released 7B shape, and the whole
# 82-question run). Carry beside the checkout: .whl/ (wheels of the versions we test with, e.g. transformers) and
# .owldata/owleval_82q (a copy of ../shared/owleval_82q). Results go to $OUT (default ./gpu_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# a checkout maps adapters/ and the manifest folder into the package the way the wheel does
[ -e owleval/adapters ] || ln -s ../adapters owleval/adapters
[ -e owleval/dataset_manifest ] || ln -s ../data/owleval_82q owleval/dataset_manifest
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export OWLEVAL_SHARED_DATA=${OWLEVAL_SHARED_DATA:-$PWD/.owldata/owleval_82q}
export PYTHONUNBUFFERED=1
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
$PY -m pytest tests/test_mplug_owl_static_decode.py -m gpu -q -p no:cacheprovider ${GPU_TESTS_EXTRA:-} 2>&1 | tee "$OUT/pytest_gpu.log"
$PY bench/bench_gpu.py --data "$OWLEVAL_SHARED_DATA" ${BENCH_ARGS:-} > "$OUT/bench_gpu.json" 2> "$OUT/bench_gpu.log"
echo "bench_gpu exit $?"; tail -5 "$OUT/bench_gpu.log"
