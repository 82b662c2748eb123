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
# torch is pinned for dev/CI by the constraints file (a CPU wheel); the library keeps a range.
pip install -q -e '.[cpu,openvino,models,video,serve,cluster,dev]' -c constraints/dev.txt
echo "== ruff"
ruff check sr_deploy tests benchmarks
echo "== mypy (the package; settings in pyproject.toml)"
mypy sr_deploy
echo "== typecheck (TensorRT API stubs)"
bash tests/typecheck_tensorrt.sh
echo "== pytest"
python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=10 "$@"
