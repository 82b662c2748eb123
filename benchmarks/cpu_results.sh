#!/usr/bin/env bash
# The committed CPU results: every precision of the shipped SRResNet x4, plain (entropy calibration, every layer
# int8) and accuracy-budgeted INT8 in both Q/DQ layouts, the CPU suite (parity, Set5/Set14 accuracy, latency) on
# all of them, then the plain calibration methods compared (minmax / percentile / entropy, both layouts).
# Usage: benchmarks/cpu_results.sh [DATASETS_DIR (default ../shared/datasets)] [WORK_DIR (default runs/cpu-precisions)]
# Environment: BENCH_ARGS overrides suite settings (default "--repeats 10"); CALIBRATION=0 skips the method comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/datasets}
W=${2:-runs/cpu-precisions}
mkdir -p "$W"
MODEL=srresnet-x4
CAL="--calib $D/train/T91"
INT8_CAL="$CAL --calib-images 40"  # 40 T91 images drawn; the 19 at least 192x192 give 4 LR crops of 48x48 each
# the budget is fitted on Set5 crops; Set14 is never seen by it (the budget must generalise)
BUDGET="--max-psnr-drop 0.05 --val $D/Set5/HR"
sr-deploy export onnx "$MODEL" -o "$W/fp32.onnx"
sr-deploy export fp16 "$W/fp32.onnx" -o "$W/fp16.onnx" $CAL
for target in ort-cpu tensorrt; do
  sr-deploy export int8 "$W/fp32.onnx" --target $target --method entropy $INT8_CAL -o "$W/int8-$target-entropy.onnx"
  sr-deploy export int8 "$W/fp32.onnx" --target $target --method entropy $INT8_CAL $BUDGET -o "$W/int8-$target-budget.onnx"
done
ONNX=()
for f in fp32 fp16 int8-ort-cpu-entropy int8-ort-cpu-budget int8-tensorrt-entropy int8-tensorrt-budget; do
  ONNX+=(--onnx "$W/$f.onnx")
done
# the whole suite (sizes 128x128, 256x256, 270x480; one variant in memory at a time), 10 timed runs per shape
# shellcheck disable=SC2086
sr-deploy bench --suite benchmarks/suites/cpu.toml ${BENCH_ARGS:---repeats 10} --model "$MODEL" "${ONNX[@]}" \
    --out 'benchmarks/results/{machine}'
[ "${CALIBRATION:-1}" = 0 ] && exit 0
# plain calibration methods (reuses the entropy models above)
python benchmarks/int8_calibration.py "$W/fp32.onnx" $INT8_CAL --data "$D/Set5/HR" --data "$D/Set14/HR" \
    --work "$W" --out 'benchmarks/results/{machine}'
