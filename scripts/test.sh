#!/usr/bin/env bash
# Install everything, then run the whole test suite (unit, SmolLM2, tutorials, docs, doctests)
# on VALUE_LENS_TEST_WORKERS processes (default 2, one torch thread each; 0 runs in this process),
# each test file on one worker (--dist loadfile), so module fixtures are built once.
#
#   bash scripts/test.sh            everything (what .ci/run runs)
#   bash scripts/test.sh --fast     the developer loop: skips tests marked slow (SmolLM2) and
#                                   gate (ruff, mypy, docs build, notebooks, install script)
# Other arguments go to pytest (e.g. bash scripts/test.sh --fast tests/analysis).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  if [ "$a" = "--fast" ]; then args+=(-m "not slow and not gate"); else args+=("$a"); fi
done
bash scripts/install.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -n "${VALUE_LENS_TEST_WORKERS:-2}" --dist loadfile ${args[@]+"${args[@]}"}
