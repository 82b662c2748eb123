#!/usr/bin/env bash
# Run one command as on another x86-64 CPU class, on any x86-64 Linux machine: the way to check the
# AVX2-only behaviour (u8s8 int8 saturation, emulated bf16, OpenVINO's refusals) on an AVX-512 machine.
#
#  * Instructions: QEMU user-mode emulation (Debian `qemu-user`, installed on first use when run as
#    root) with a named CPU model, so CPUID reports that CPU and every library (MLAS in ONNX Runtime,
#    oneDNN in torch and OpenVINO) dispatches to its kernels, which QEMU executes instruction by
#    instruction, saturating `vpmaddubsw` included. Results are those of the emulated CPU's kernels;
#    timings are meaningless (10-100x slower).
#  * /proc/cpuinfo: QEMU passes the host's file through, so the command runs in a private mount
#    namespace where /proc/cpuinfo is the host's with the flags the model lacks removed and the model
#    name "QEMU <model> (emulated on <host CPU>)", so every result the command records (environment,
#    results folder) says it was emulated. A check first makes sure torch sees the same class.
#  * Only the named process is emulated: a child process (a CLI subprocess, pytest-xdist workers)
#    would run natively, so run pytest with `-p no:xdist` and select in-process tests.
#
# Usage: tests/emulate_cpu.sh avx2 COMMAND [ARGS...]   (avx2 = AMD EPYC Zen 3, "EPYC-Milan":
#        AVX2 + FMA, no AVX-512, no VNNI, no BF16). COMMAND is usually .venv/bin/python; the check
#        runs $PYTHON (default .venv/bin/python).
set -euo pipefail
class=${1:?usage: tests/emulate_cpu.sh avx2 COMMAND [ARGS...]}
shift
case "$class" in
  avx2) model=EPYC-Milan; drop='^(avx512.*|avx_vnni.*|amx.*|avx_ne_convert|avx_ifma|avx10.*)$' ;;
  *) echo "emulate_cpu.sh: unknown CPU class '$class' (known: avx2)" >&2; exit 2 ;;
esac
if ! command -v qemu-x86_64 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq qemu-user >/dev/null
  else
    echo "emulate_cpu.sh: qemu-x86_64 not found: install Debian's qemu-user (apt-get install qemu-user)" >&2
    exit 2
  fi
fi
fake=$(mktemp)
trap 'rm -f "$fake"' EXIT
awk -v drop="$drop" -v model="$model" '
  /^model name[ \t]*:/ { sub(/:.*/, ": QEMU " model " (emulated on " substr($0, index($0, ":") + 2) ")"); print; next }
  /^flags[ \t]*:/ { n = split($0, f, ":"); split(f[2], w, " "); line = "flags\t\t:";
                    for (i = 1; i in w; i++) if (w[i] !~ drop) line = line " " w[i]; print line; next }
  { print }' /proc/cpuinfo >"$fake"
# The check runs inside the emulation: the ISA torch dispatches to must agree with the class the
# rewritten /proc/cpuinfo gives sr_deploy. (No exec: the trap removes the rewritten file afterwards.)
unshare --mount -- bash -c '
  set -euo pipefail
  mount --bind "$1" /proc/cpuinfo
  model=$2; class=$3; python=$4; shift 4
  qemu-x86_64 -cpu "$model" "$python" - "$class" <<EOF 2> >(grep -v "TCG doesn.t support requested feature" >&2)
import sys
from sr_deploy.hardware import this_cpu
cls = this_cpu().isa
torch_isa = None
try:
    import torch
    torch_isa = torch.backends.cpu.get_cpu_capability()
except ImportError:
    pass
if cls != sys.argv[1] or (torch_isa is not None and torch_isa != "AVX2"):
    sys.exit(f"emulate_cpu.sh: the emulation is not the {sys.argv[1]} class: sr_deploy sees {cls}, torch {torch_isa}")
print(f"emulated CPU: {sys.argv[1]} (sr_deploy: {cls}, torch: {torch_isa})", file=sys.stderr)
EOF
  exec qemu-x86_64 -cpu "$model" "$@" 2> >(grep --line-buffered -v "TCG doesn.t support requested feature" >&2)
' emulate "$fake" "$model" "$class" "${PYTHON:-.venv/bin/python}" "$@"
