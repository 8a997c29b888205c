#!/usr/bin/env bash
# Install everything, then run the whole test suite (unit, SmolLM2, tutorials, docs, doctests)
# on VALUE_LENS_TEST_WORKERS processes (default 2, one torch thread each; 0 runs in this process),
# each test file on one worker (--dist loadfile), so module fixtures are built once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -n "${VALUE_LENS_TEST_WORKERS:-2}" --dist loadfile "$@"
