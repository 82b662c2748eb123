"""The ``tensorrt`` int8 layout against NVIDIA Model Optimizer's on the same fp32 ONNX: node by node and in accuracy.

Both quantize the same fp32 ONNX of ``--model`` (default the shipped ``srresnet-x4``) from the same calibration
crops (``--crops`` LR crops of 48x48 from the first usable ``--calib`` images, as ``sr-deploy export int8`` cuts
them; the images are linked, not copied, into ``--work``): sr-deploy with ``export_int8(target="tensorrt",
method="entropy")``, ModelOpt with ``modelopt.onnx.quantization.quantize(quantize_mode="int8",
calibration_method="entropy", calibration_eps=["cpu"], high_precision_dtype="fp32")`` run by the Python of its
own virtual environment (``--modelopt-python``; ModelOpt's ``[onnx]`` extra pins onnx and onnxruntime-gpu, so it never
goes into the project's environment), then stamped with the fp32 model's sr-deploy metadata so
``benchmarks/gpu_check.py --modelopt-onnx`` can build it. Compared:

- node by node: for every input of every node, whether it carries a Q/DQ pair (activation inputs: per-tensor
  scale; Conv weights: per-channel scales) in each model, and the ratio of the scales where both quantize it;
- accuracy: Y-PSNR on each ``--data`` folder with ONNX Runtime CPU (fp32, sr-deploy, ModelOpt).

Writes ``modelopt_compare.{md,json}`` and ``modelopt_nodes.csv`` to ``--out`` (``{machine}`` is replaced).

Usage (from the repository root):
    python benchmarks/modelopt_compare.py --calib ../shared/datasets/train/T91 \\
        --data ../shared/datasets/Set5/HR --data ../shared/datasets/Set14/HR \\
        --modelopt-python /work/runs/modelopt-venv/bin/python --work runs/modelopt --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import polars as pl
from onnx import numpy_helper
from rich.console import Console

import sr_deploy as sr
from sr_deploy.artifacts import atomic_write_bytes, atomic_write_json
from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.onnx_metadata import load_sr_onnx
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.bench.run import dataset_name
from sr_deploy.data.datasets import collect_images
from sr_deploy.export.calibration import calibration_set

#: Run by ModelOpt's own Python: argv = fp32 ONNX, calibration .npy (N x 3 x 48 x 48), output ONNX; prints JSON.
MODELOPT_CODE = """
import json, sys, time
import numpy as np
import modelopt
from modelopt.onnx.quantization import quantize
start = time.perf_counter()
quantize(onnx_path=sys.argv[1], quantize_mode="int8", calibration_data=np.load(sys.argv[2]),
         calibration_method="entropy", calibration_eps=["cpu"], high_precision_dtype="fp32", output_path=sys.argv[3])
print(json.dumps({"modelopt": modelopt.__version__, "seconds": time.perf_counter() - start}))
"""


def quantized_inputs(model: onnx.ModelProto) -> dict[tuple[str, int], np.ndarray]:
    """(node name, input index) -> the scale(s) of the DequantizeLinear feeding that input, for every original
    (non-Q/DQ) node of a Q/DQ model."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear":
                found[(node.name, i)] = np.atleast_1d(inits[dq.input[1]]).astype(np.float64)
    return found


def compare_nodes(fp32: onnx.ModelProto, ours: onnx.ModelProto, theirs: onnx.ModelProto) -> pl.DataFrame:
    """One row per node input that either model quantizes: op, input index, kind (weight / activation),
    whether each quantizes it, the scales (activation) or the largest relative per-channel difference (weight)."""
    a, b = quantized_inputs(ours), quantized_inputs(theirs)
    rows = []
    for node in fp32.graph.node:
        for i in range(len(node.input)):
            if (node.name, i) not in a and (node.name, i) not in b:
                continue
            sa, sb = a.get((node.name, i)), b.get((node.name, i))
            weight = node.op_type == "Conv" and i == 1
            row: dict[str, Any] = {"node": node.name, "op": node.op_type, "input": i,
                                   "kind": "weight" if weight else "activation",
                                   "sr_deploy": sa is not None, "modelopt": sb is not None,
                                   "sr_deploy_scale": None, "modelopt_scale": None, "scale_ratio": None}
            if not weight:
                row["sr_deploy_scale"] = float(sa[0]) if sa is not None else None
                row["modelopt_scale"] = float(sb[0]) if sb is not None else None
            if sa is not None and sb is not None:
                row["scale_ratio"] = float(np.max(np.abs(sa / sb - 1.0))) if weight else float(sa[0] / sb[0])
            rows.append(row)
    return pl.DataFrame(rows)


def calibration_folder(calib: Path, work: Path, crops: int, scale: int) -> tuple[Path, Path]:
    """Links the first usable images of ``calib`` (``crops / 4`` of them) into ``work/calib``; returns that folder
    and a .npy of its crops (exactly what ``export_int8(calib=folder)`` cuts)."""
    per_image = 4
    chosen = calibration_set(calib, scale).images[: math.ceil(crops / per_image)]
    folder = work / "calib"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (Path(image).name for image in chosen):
        link = folder / name
        if not link.exists():
            link.symlink_to((calib / name).resolve())
    cset = calibration_set(folder, scale)
    if cset.num_crops != crops:
        raise SystemExit(f"{folder}: {cset.num_crops} calibration crops, wanted {crops}")
    npy = work / "calib.npy"
    np.save(npy, np.concatenate(cset.batches))
    return folder, npy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srresnet-x4", help="shipped name or weights (exported to fp32 ONNX)")
    parser.add_argument("--calib", type=Path, required=True, help="calibration image folder (T91)")
    parser.add_argument("--crops", type=int, default=80, help="calibration crops (4 per image, 48x48 LR)")
    parser.add_argument("--data", type=Path, action="append", required=True, help="HR evaluation folder (repeatable)")
    parser.add_argument("--modelopt-python", type=Path, required=True, help="python of ModelOpt's own venv")
    parser.add_argument("--work", type=Path, required=True, help="folder for the models (reused when present)")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    console = Console()
    args.work.mkdir(parents=True, exist_ok=True)
    fp32_path = args.work / "fp32.onnx"
    if not fp32_path.exists():
        sr.export_onnx(args.model, fp32_path)
    fp32, desc = load_sr_onnx(fp32_path, "fp32")
    folder, npy = calibration_folder(args.calib, args.work, args.crops, desc.scale)
    ours_path, theirs_path = args.work / "sr-deploy-tensorrt.int8.onnx", args.work / "modelopt.int8.onnx"
    if not ours_path.exists():
        console.print("sr-deploy export int8 --target tensorrt")
        sr.export_int8(fp32_path, ours_path, target="tensorrt", calib=folder, method="entropy", max_plain_drop=math.inf)
    modelopt_run: dict[str, Any] = {}
    if not theirs_path.exists():
        console.print("ModelOpt quantize (its own venv)")
        done = subprocess.run([str(args.modelopt_python), "-c", MODELOPT_CODE, str(fp32_path), str(npy),
                               str(theirs_path)], capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"ModelOpt failed ({done.returncode}):\n{done.stderr[-4000:]}")
        modelopt_run = json.loads(done.stdout.strip().splitlines()[-1])
    ours, theirs = onnx.load(str(ours_path)), onnx.load(str(theirs_path))
    if meta.DESCRIPTOR not in meta.read_props(theirs):  # so sr-deploy (and gpu_check.py) can load and build it
        meta.write_props(theirs, {**meta.read_props(fp32), meta.PRECISION: "int8", meta.SOURCE: "modelopt",
                                  meta.CALIBRATION: {"layout": "modelopt", "method": "entropy",
                                                     "activations": "int8 symmetric", **modelopt_run}})
        atomic_write_bytes(theirs_path, theirs.SerializeToString())
    nodes = compare_nodes(fp32, ours, theirs)
    act = nodes.filter(pl.col("kind") == "activation")
    placement = (act.group_by("op", "input").agg(pl.col("sr_deploy").sum(), pl.col("modelopt").sum())
                 .sort("op", "input"))
    differ = act.filter(pl.col("sr_deploy") != pl.col("modelopt"))
    both = act.filter(pl.col("scale_ratio").is_not_null())["scale_ratio"]
    weights = nodes.filter(pl.col("kind") == "weight")
    rows = []
    for name, path in (("fp32", fp32_path), ("sr-deploy tensorrt layout", ours_path), ("ModelOpt int8", theirs_path)):
        with OrtUpscaler(path, descriptor=desc) as up:
            for data in args.data:
                scores = sr.evaluate(up, collect_images([data]))
                rows.append({"model": name, "dataset": dataset_name(str(data)), "psnr_y": scores["psnr_y"].mean()})
                console.print(f"{name} {rows[-1]['dataset']}: {rows[-1]['psnr_y']:.3f} dB")
    acc = pl.DataFrame(rows)
    base = acc.filter(pl.col("model") == "fp32").select("dataset", pl.col("psnr_y").alias("fp32"))
    acc = acc.join(base, on="dataset").with_columns(drop_db=pl.col("fp32") - pl.col("psnr_y")).drop("fp32")
    env = environment()
    out = results_folder(args.out, env)
    save_table(nodes, out, "modelopt_nodes", formats=("csv",))
    command = "python benchmarks/modelopt_compare.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = {
        "command": command, "cpu": env.get("cpu"), "model": args.model, "calibration": {"crops": args.crops,
        "images": sorted(p.name for p in folder.iterdir())}, "modelopt_run": modelopt_run,
        "activation_inputs_quantized": {"sr_deploy": int(act["sr_deploy"].sum()),
                                        "modelopt": int(act["modelopt"].sum())},
        "by_op_input": placement.to_dicts(), "placement_differs": differ.select("node", "input", "sr_deploy",
                                                                               "modelopt").to_dicts(),
        "activation_scale_ratio": {"median": float(both.median()), "min": float(both.min()), "max": float(both.max())}
        if len(both) else None,
        "weight_scale_max_rel_diff": float(weights["scale_ratio"].max()) if len(weights) else None,
        "accuracy": acc.to_dicts(),
        "ops": {"sr_deploy": dict(Counter(n.op_type for n in ours.graph.node)),
                "modelopt": dict(Counter(n.op_type for n in theirs.graph.node))},
    }
    atomic_write_json(out / "modelopt_compare.json", summary)
    lines = [
        "# sr-deploy `tensorrt` int8 layout vs NVIDIA ModelOpt int8 (same fp32 ONNX, same calibration crops)",
        "",
        f"Command: `{command}`",
        "",
        f"CPU: {env.get('cpu', {}).get('model')} ({env.get('cpu', {}).get('isa_class', '')}); accuracy on ONNX "
        f"Runtime CPU; ModelOpt {modelopt_run.get('modelopt', '(models reused)')}; {args.crops} calibration crops.",
        "",
        "## Which activation inputs carry a Q/DQ pair (count of node inputs)",
        "",
        markdown_table(placement),
        "",
        f"Inputs quantized by one tool only: {len(differ)}"
        + ("" if differ.is_empty() else "\n\n" + markdown_table(differ.select("node", "op", "input", "sr_deploy",
                                                                             "modelopt"))),
        "",
        "## Scales where both quantize an input",
        "",
        f"Activation scale ratio sr-deploy / ModelOpt over {len(both)} inputs: "
        + (f"median {both.median():.3f}, min {both.min():.3f}, max {both.max():.3f}" if len(both) else "none")
        + f". Conv weights (per channel): largest relative difference {summary['weight_scale_max_rel_diff']}.",
        "",
        "## Accuracy (Y-PSNR, dB; drop from fp32)",
        "",
        markdown_table(acc),
        "",
        "Per-node table: `modelopt_nodes.csv`.",
    ]
    console.print(f"wrote {save_markdown(out, 'modelopt_compare', lines)}")


if __name__ == "__main__":
    main()
