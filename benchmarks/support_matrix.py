"""The "Bring your own model" support matrix, from real runs (issue 14).

For every architecture in ``tests.helpers.THIRD_PARTY`` (tiny random networks built from spandrel's
architecture classes; nothing is downloaded) plus sr-deploy's own SRResNet (tiny, random), this saves the
network as a third-party checkpoint, then runs the real chain on this CPU and records what happened:

- loads: ``sr.load_weights`` (spandrel identification + the measured halo), its scale and size rules;
- ONNX: ``sr.export_onnx`` (dynamic height/width, or the fixed-shape fallback and why) and its parity gate;
- fp16: ``sr.export_fp16`` (its gate, and the nodes it kept in fp32);
- int8: ``sr.export_int8(target="ort-cpu", max_psnr_drop=BUDGET)`` (the accuracy-budget search; the drop
  is measured against the fp32 ONNX on the embedded photos: with random weights it describes these
  random networks, not trained ones);
- tiling: exact or approximate (the descriptor's measurement) and the max-abs difference between tiled
  (``--tile 16``) and whole-image output on a real photo crop (at least 64 x 80, large enough for several
  windows at the model's halo) through PyTorch;
- TensorRT: the default optimization profile the builder would use (planned, not built: no TensorRT here).

Usage (from the repository root): ``python benchmarks/support_matrix.py [--out benchmarks/results/support_matrix.md]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tiny random networks are the test suite's factories (tests/helpers.py)

import sr_deploy as sr  # noqa: E402
from sr_deploy.artifacts import atomic_write_bytes  # noqa: E402
from sr_deploy.backends.trt_profiles import default_profile  # noqa: E402
from sr_deploy.data.crops import parity_inputs  # noqa: E402
from sr_deploy.hardware import this_cpu  # noqa: E402
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled  # noqa: E402
from tests.helpers import THIRD_PARTY, save_third_party, save_tiny_model  # noqa: E402

BUDGET_DB = 0.1
COLUMNS = ("architecture", "loads", "ONNX dynamic H/W", "parity fp32", "fp16", "int8 budget (ort-cpu)",
           "tiling", "TensorRT profile plan", "seconds")


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:140]}".replace("|", "/")


def _int8_layers(path: Path) -> str:
    """``"int8 Conv a/b, MatMul c/d"``: layers whose weights come through a DequantizeLinear, of all."""
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    counts = []
    for op in ("Conv", "MatMul", "Gemm"):
        nodes = [n for n in graph.node if n.op_type == op]
        if nodes:
            quantized = sum(producer.get(n.input[1]) == "DequantizeLinear" for n in nodes)
            counts.append(f"{op} {quantized}/{len(nodes)}")
    return "int8 " + ", ".join(counts)


def _row(name: str, weights: Path, folder: Path) -> dict[str, Any]:
    start = time.perf_counter()
    row: dict[str, Any] = {"architecture": name}
    try:
        _, desc = sr.load_weights(weights)
    except Exception as exc:
        return {**row, "loads": f"no ({_short(exc)})", "seconds": f"{time.perf_counter() - start:.0f}"}
    rules = f"x{desc.scale}" + (f", multiple of {desc.size_multiple}" if desc.size_multiple > 1 else "") + (
        f", min {desc.min_size}" if desc.min_size > 1 else "")
    row["loads"] = f"yes ({desc.architecture}, {rules})" if desc.loader == "spandrel" else f"yes (sr-deploy, {rules})"
    try:
        exported = sr.export_onnx(weights, folder / f"{name}.onnx")
        parity = exported.parity
        fixed = exported.descriptor.fixed_size
        row["ONNX dynamic H/W"] = "yes" if fixed is None else f"no: fixed {fixed[0]}x{fixed[1]}, batch 1 (tiled to)"
        row["parity fp32"] = f"pass, {parity.psnr_db:.0f} dB, max-abs {parity.max_abs:.1e}"
        row["TensorRT profile plan"] = f"`{default_profile(exported.descriptor)}`"
    except Exception as exc:
        row["ONNX dynamic H/W"] = f"export failed ({_short(exc)})"
        return {**row, "seconds": f"{time.perf_counter() - start:.0f}"}
    try:
        fp16 = sr.export_fp16(exported, folder / f"{name}.fp16.onnx")
        row["fp16"] = f"pass, {len(fp16.fp32_nodes)} nodes kept fp32"
    except Exception as exc:
        row["fp16"] = f"fails gate ({_short(exc)})"
    try:
        int8 = sr.export_int8(exported, folder / f"{name}.int8.onnx", target="ort-cpu", max_psnr_drop=BUDGET_DB)
        budget = int8.budget
        drop = "" if budget is None else (f", drop {budget.final_drop:.3f} dB (all int8: "
                                          f"{budget.all_int8_drop:.3f} dB)")
        row["int8 budget (ort-cpu)"] = f"{_int8_layers(int8.path)}{drop}"
    except Exception as exc:
        row["int8 budget (ort-cpu)"] = f"not usable ({_short(exc)})"
    with sr.load(weights, backend="torch") as up:
        height = max(64, 4 * up.descriptor.receptive_radius + 16)  # several windows whatever the halo
        width = height + 16
        image = parity_inputs(4, sizes=[(1, height, width)])[0][0]
        plan = plan_tiles(up, height, width, tile=16)
        tiled = upscale_tiled(up, image, plan)
        whole = upscale_tiled(up, image, plan_tiles(up, height, width, tile=0))
    error = float(np.abs(tiled - whole).max())
    kind = "exact" if up.descriptor.halo_exact else "approximate"
    row["tiling"] = (f"{kind}, halo {up.descriptor.receptive_radius}: max-abs {error:.1e} on a {height}x{width} photo "
                     f"({plan.count} windows of {plan.tile_h}x{plan.tile_w})")
    row["seconds"] = f"{time.perf_counter() - start:.0f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/support_matrix.md")
    parser.add_argument("--only", nargs="*", default=None, help="architecture names (default: all)")
    args = parser.parse_args()
    names = ["srresnet (sr-deploy)", *THIRD_PARTY]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sr-deploy-matrix.") as tmp:
        folder = Path(tmp)
        for name in names:
            if args.only and name not in args.only:
                continue
            if name in THIRD_PARTY:
                weights = save_third_party(name, folder / f"{name}{'.safetensors' if len(name) % 2 else '.pth'}")
            else:
                weights = save_tiny_model(folder / "srresnet-tiny.safetensors")
            rows.append(_row(name, weights, folder))
            print(" | ".join(str(rows[-1].get(c, "")) for c in COLUMNS), flush=True)
    cpu = this_cpu()
    lines = [
        f"Generated by `python benchmarks/support_matrix.py` on {cpu.model} ({cpu.isa} class), "
        f"{time.strftime('%Y-%m-%d')}; tiny random networks (no downloads), int8 budget {BUDGET_DB} dB.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows),
    ]
    atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
