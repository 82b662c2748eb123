"""How long the entropy calibration's threshold search takes: ONNX Runtime's own against sr-deploy's vectorized one.

One calibration pass (``export int8``'s: the model's activations over the calibration crops, a ``--bins``-bin
histogram per tensor), then, in alternating rounds on the same histograms, ONNX Runtime's
``HistogramCollector.compute_entropy`` and :func:`sr_deploy.export.entropy.entropy_threshold` over every tensor;
whether the two chose exactly the same thresholds is checked on every tensor. Writes ``calibration_speed.{csv,md}``.

    python benchmarks/calibration_speed.py --model srresnet-x4 --rounds 2 --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import polars as pl

from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.entropy import entropy_threshold
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.qdq import DEFAULT_BINS, ENTROPY_QUANTIZED_BINS, LAYOUTS, calibrated
from sr_deploy.hardware import this_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srresnet-x4", help="shipped model name or weights file")
    parser.add_argument("--calib", default=None, help="calibration images (default: the embedded photos)")
    parser.add_argument("--calib-images", type=int, default=None, help="at most this many (default: all)")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="histogram bins (export int8 --bins)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each implementation, alternating")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sr-deploy-calibration-speed.") as tmp:
        exported = export_onnx(args.model, Path(tmp) / "model.onnx")
        calib = calibration_set(args.calib, exported.descriptor.scale, num_images=args.calib_images)
        collector = calibrated(exported.path, calib, LAYOUTS["ort-cpu"], "entropy", bins=args.bins).collector
    histograms = collector.histogram_dict

    def onnx_runtime() -> dict[str, tuple[object, object]]:
        with contextlib.redirect_stdout(io.StringIO()):
            return {t: (r[0], r[1]) for t, r in collector.compute_entropy().items()}

    def sr_deploy() -> dict[str, tuple[object, object]]:
        return {t: entropy_threshold(h, ENTROPY_QUANTIZED_BINS) for t, h in histograms.items()}

    seconds: dict[str, list[float]] = {"onnxruntime": [], "sr-deploy": []}
    chosen: dict[str, dict[str, tuple[object, object]]] = {}
    for r in range(args.rounds):
        for name, search in (("onnxruntime", onnx_runtime), ("sr-deploy", sr_deploy)):
            start = time.perf_counter()
            chosen[name] = search()
            seconds[name].append(time.perf_counter() - start)
            print(f"round {r + 1}/{args.rounds}: {name} {seconds[name][-1]:.2f} s", flush=True)
    same = sum(chosen["onnxruntime"][t] == chosen["sr-deploy"][t] for t in histograms)
    best = {name: min(times) for name, times in seconds.items()}
    table = pl.DataFrame([
        {"search": name, "tensors": len(histograms), "bins": args.bins, "crops": calib.num_crops,
         "best_s": round(best[name], 3), "rounds_s": " / ".join(f"{t:.2f}" for t in seconds[name]),
         "speedup": round(best["onnxruntime"] / best[name], 2), "same_thresholds": f"{same}/{len(histograms)}"}
        for name in seconds])
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "calibration_speed", formats=("csv",))
    cpu = this_cpu()
    calib_args = (f" --calib {args.calib}" if args.calib else "") + (
        f" --calib-images {args.calib_images}" if args.calib_images else "")
    text = [
        f"# Entropy calibration's threshold search ({args.model}, {args.bins} bins)",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} cores. One calibration pass over "
        f"{calib.num_crops} crops of {calib.crop}x{calib.crop} from {len(calib.images)} image(s) "
        f"({args.calib or 'the embedded photos'}); each search then ran over all {len(histograms)} tensors' histograms "
        f"in {args.rounds} alternating round(s) (best_s: the fastest round). same_thresholds: tensors whose chosen "
        "range is exactly ONNX Runtime's.",
        "",
        markdown_table(table),
        "",
        f"Command: `python benchmarks/calibration_speed.py --model {args.model}{calib_args} --bins {args.bins} "
        f"--rounds {args.rounds} --out '{args.out}'`",
    ]
    print(save_markdown(out, "calibration_speed", text))


if __name__ == "__main__":
    main()
