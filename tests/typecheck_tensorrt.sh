#!/usr/bin/env bash
# Type-check the TensorRT code against the real TensorRT Python API, without TensorRT or a GPU.
#
#  1. mypy --strict over the TensorRT modules with NVIDIA's API stubs (PyPI tensorrt-stubs, 10.x)
#     on MYPYPATH: a misspelled builder/runtime call or a wrong argument fails here.
#  2. mypy --strict over the runtime module with stubs generated (stubgen) from the real TensorRT 11
#     lean runtime binary (PyPI tensorrt-lean-cu13, imports without a GPU): every Runtime /
#     ICudaEngine / IExecutionContext member the runtime uses must exist in 11.x too.
#
# Everything is installed with --no-deps --target into .stubs/ (cached; never into the venv: the
# stubs wheel leaves an empty `tensorrt` package that fools `import tensorrt` checks) and three
# syntax problems of tensorrt-stubs are patched. Needs PyPI the first time only.
# Usage: tests/typecheck_tensorrt.sh [module.py ...]   (default: the TensorRT modules)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STUBS_VERSION=10.13.0.35.1
LEAN_VERSION=11.4.0.106
ROOT=.stubs
TRT10=$ROOT/trt10-$STUBS_VERSION
LEAN=$ROOT/trt11-lean-$LEAN_VERSION

if [ ! -f "$TRT10/.patched" ]; then
  rm -rf "$TRT10"
  "$PY" -m pip install -q --no-deps --target "$TRT10" "tensorrt-stubs==$STUBS_VERSION"
  "$PY" - "$TRT10" <<'EOF'
import re, sys
from pathlib import Path
root = Path(sys.argv[1])
for pyi in root.rglob("*.pyi"):
    text = pyi.read_text()
    # 1. parameters named `in` (a keyword): def f(self, in: X, out: Y)
    text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", text)
    # 2. a parameter without default after defaulted ones (add_scale_nd ..., channel_axis: int)
    text = re.sub(r"(power: Weights = None, )channel_axis: int\)", r"\1channel_axis: int = ...)", text)
    # 3. `import tensorrt_libs` (a package that is not there)
    text = re.sub(r"^import tensorrt_libs as tensorrt_libs$", "", text, flags=re.M)
    pyi.write_text(text)
EOF
  touch "$TRT10/.patched"
fi

if [ ! -f "$LEAN/.generated" ]; then
  rm -rf "$LEAN"
  "$PY" -m pip install -q --no-deps --target "$LEAN/pkgs" \
    "tensorrt-lean-cu13==$LEAN_VERSION" "tensorrt-lean-cu13-bindings==$LEAN_VERSION" "tensorrt-lean-cu13-libs==$LEAN_VERSION"
  PYTHONPATH="$LEAN/pkgs" "$PY" -c "import sys; from mypy.stubgen import main; main(sys.argv[1:])" -q -p tensorrt_lean_bindings -o "$LEAN/stubs"
  mkdir -p "$LEAN/stubs/tensorrt"
  printf 'from tensorrt_lean_bindings.tensorrt_lean import *\n__version__: str\n' > "$LEAN/stubs/tensorrt/__init__.pyi"
  touch "$LEAN/.generated"
fi

CONFIG=$(mktemp)
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<'EOF'
[mypy]
python_version = 3.11
strict = True
follow_imports = silent
ignore_missing_imports = True
[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_lean_bindings.*]
ignore_errors = True
EOF

MODULES=("$@")
if [ ${#MODULES[@]} -eq 0 ]; then
  MODULES=(sr_deploy/export/tensorrt.py benchmarks/trt_inspect.py sr_deploy/backends/trt_metadata.py sr_deploy/backends/trt_profiles.py
           sr_deploy/backends/trt.py sr_deploy/hardware.py sr_deploy/backends/cuda_memory.py)
  RUNTIME=(sr_deploy/backends/trt.py)
else
  RUNTIME=()
fi
# One mypy cache for both runs: torch, numpy and the rest are analysed once, and mypy re-checks whatever
# depends on the `tensorrt` stubs, which differ (checked: a `trt.Builder` reference passes against 10.x,
# then fails against the lean 11 runtime with the cache the first run wrote).
echo "mypy --strict, tensorrt-stubs $STUBS_VERSION: ${MODULES[*]}"
MYPYPATH="$TRT10" "$PY" -m mypy --config-file "$CONFIG" --cache-dir "$ROOT/mypy-cache" "${MODULES[@]}"
if [ ${#RUNTIME[@]} -gt 0 ]; then
  echo "mypy --strict, TensorRT $LEAN_VERSION lean runtime (stubgen): ${RUNTIME[*]}"
  MYPYPATH="$LEAN/stubs" "$PY" -m mypy --config-file "$CONFIG" --cache-dir "$ROOT/mypy-cache" "${RUNTIME[@]}"
fi
