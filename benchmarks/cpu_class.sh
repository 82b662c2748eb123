#!/usr/bin/env bash
# Issue 12's evidence for this machine's CPU class, in one command (about 23 minutes on 2 AVX-512 cores), into
# benchmarks/results/<machine>/cpu-class/ (or $OUT; its own folder, so the machine's other results stay as they are):
#   info.json            `sr-deploy info --json`: CPU model, ISA class, native/emulated precisions, routes, versions
#   demo_manifest.json   `sr-deploy demo` from scratch: each step's seconds and the machine it ran on
#   upscale_speed.md     whole `sr-deploy upscale` processes on a 540x960 LR image: auto and auto --max-psnr-drop 0.05
#                        against torch fp32 (bars: >= 1.1x and >= 1.5x)
#   tune_probe.md        whether the 256x256 / 128x128 route probe picks the route fastest on the 540x960 window
#   int8_calibration.md  plain `export int8 --target ort-cpu` with default options (entropy, 40 T91 images drawn, weights
#                        width chosen for this CPU): Y-PSNR drop on Set5 and Set14 on ONNX Runtime and OpenVINO
#                        (bar: <= 0.15 dB)
# Usage: benchmarks/cpu_class.sh [DATASETS_DIR (default ../shared/datasets)] [WORK_DIR (default runs/cpu-class)]
# Environment: OUT (default 'benchmarks/results/{machine}/cpu-class'); QUICK=1 for a smoke run of every step on tiny sizes
# (minutes; its numbers mean nothing: never commit them).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/datasets}
W=${2:-runs/cpu-class}
[ -f .venv/bin/activate ] && . .venv/bin/activate
DEFAULT_OUT='benchmarks/results/{machine}/cpu-class'
OUT=$(python -c "import sys; from sr_deploy.bench.results import results_folder; print(results_folder(sys.argv[1]))" \
  "${OUT:-$DEFAULT_OUT}")
if [ "${QUICK:-0}" = 1 ]; then
  SPEED=(--size 48x64 --rounds 1); PROBE=(--size 64x64 --probe 32x32 --budget 0.5)
  INT8=(--calib-images 2 --data "$D/Set5/HR")
else
  SPEED=(--size 540x960 --rounds 3); PROBE=(--size 540x960 --probe 256x256 --probe 128x128)
  INT8=(--calib-images 40 --data "$D/Set5/HR" --data "$D/Set14/HR")
fi
mkdir -p "$W"
echo "== sr-deploy info -> $OUT/info.json"
sr-deploy info --json > "$OUT/info.json.tmp" && mv "$OUT/info.json.tmp" "$OUT/info.json"
echo "== sr-deploy demo (from scratch)"
rm -rf "$W/demo"
sr-deploy demo --out "$W/demo"
cp "$W/demo/manifest.json" "$OUT/demo_manifest.json.tmp" && mv "$OUT/demo_manifest.json.tmp" "$OUT/demo_manifest.json"
echo "== upscale speed"
python benchmarks/upscale_speed.py --photo "$D/Set14/HR/baboon.png" "${SPEED[@]}" --out "$OUT"
echo "== route probe"
python benchmarks/tune_probe.py "${PROBE[@]}" --max-psnr-drop 0.05 --out "$OUT"
echo "== plain int8, default options"
sr-deploy export onnx srresnet-x4 -o "$W/fp32.onnx"
python benchmarks/int8_calibration.py "$W/fp32.onnx" --calib "$D/train/T91" "${INT8[@]}" --target ort-cpu \
  --method entropy --weights auto --engine onnxruntime --engine openvino --work "$W/int8" --out "$OUT"
echo "results in $OUT"
