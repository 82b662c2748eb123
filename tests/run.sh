#!/usr/bin/env bash
# The README's test command: sets up .venv on a fresh machine, then lint, type checks and tests.
# Usage: tests/run.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import sr_deploy, pytest, mypy, ruff, onnxruntime" 2>/dev/null; then
  pip install -q --upgrade pip
  pip install -q -e '.[cpu,dev]' -c constraints/dev.txt
fi
echo "== ruff"
ruff check sr_deploy tests benchmarks
echo "== typecheck (TensorRT API stubs)"
bash tests/typecheck_tensorrt.sh
echo "== pytest"
python -m pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
