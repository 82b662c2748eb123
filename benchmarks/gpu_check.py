"""One-shot GPU check: every GPU inference path of sr-deploy, its parity against PyTorch fp32 and its latency.

Meant for one run on a GPU machine without a package registry (e.g. Python 3.12, torch CUDA,
onnx, CPU onnxruntime): wheels it needs beyond that (tensorrt, cuda-bindings, onnxruntime-gpu,
polars ...) are carried in a folder given with ``--wheels``. It

1. installs every wheel in ``--wheels`` (``pip --no-index``), reporting what failed;
2. makes a model (``--model`` weights, else random SRResNet weights: parity and speed only);
3. exports ONNX fp32/fp16/int8 through the Python API (``sr_deploy.export_onnx`` / ``export_fp16`` /
   ``export_int8``, each parity-gated) when a path that runs ONNX on the GPU is available;
4. builds TensorRT engines (``sr_deploy.build_engine``) when TensorRT works;
5. runs parity against torch fp32 with the project's one comparator (``sr_deploy.compare`` under the
   precision's tolerance: PSNR, max-abs, pass/fail) and latency for: TensorRT (numpy and zero-copy
   CUDA arrays, CUDA graphs), ONNX Runtime CUDA EP, torch CUDA fp32/fp16/channels_last/CUDA graphs;
6. INT8 placement: builds the engine of ModelOpt's int8 ONNX (``--modelopt-onnx``, from
   ``benchmarks/modelopt_compare.py`` for the same ``--model``) and times it beside the project's int8 and
   fp16; ``IEngineInspector`` (``benchmarks/trt_inspect.py``) says for each which layers ran fused and in INT8
   (``tensorrt_layers`` in results.json, the layer records in ``layers-*.json``);
7. writes ``results.json`` and ``results.csv`` (polars) into ``--out`` and prints one line per path,
   ``not available: <reason>`` for those that cannot run.

On a machine without a GPU it still runs and reports every GPU path as not available.

    python benchmarks/gpu_check.py --out gpu-check [--wheels wheels/] [--model weights.safetensors]
    python benchmarks/gpu_check.py --out gpu-check --model srresnet-x4 --modelopt-onnx runs/modelopt/modelopt.int8.onnx
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # trt_inspect

import numpy as np  # noqa: E402


@dataclass
class PathResult:
    """One inference path: ``status`` is ``ok``, ``not available`` or ``failed`` (then ``reason``)."""

    path: str
    status: str
    reason: str = ""
    psnr_db: float | None = None
    max_abs: float | None = None
    passed: bool | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    shape: str = ""


def install_wheels(folder: Path) -> dict[str, str]:
    """``pip install --no-index`` every wheel in ``folder`` (one pip call each: one failure stops none)."""
    status = {}
    wheels = sorted(folder.glob("*.whl"))
    if any(w.name.startswith("onnxruntime_gpu-") for w in wheels):
        # both wheels ship the `onnxruntime` package: the CPU one must go first (ORT's install notes)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "onnxruntime"], capture_output=True)
    for wheel in wheels:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder), "--no-deps",
             str(wheel)],
            capture_output=True, text=True,
        )
        status[wheel.name] = "installed" if proc.returncode == 0 else f"failed: {proc.stderr.strip()[-300:]}"
    importlib.invalidate_caches()
    return status


def environment() -> dict[str, Any]:
    """Python, library versions, torch CUDA and the GPU."""
    import torch

    from sr_deploy.artifacts import library_versions

    env: dict[str, Any] = {"python": platform.python_version(), "libraries": library_versions(),
                           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["compute_capability"] = list(torch.cuda.get_device_capability(0))
    return env


def make_weights(args: argparse.Namespace, out: Path) -> Path:
    """``--model`` if given, else random SRResNet weights saved as safetensors in ``out``."""
    if args.model:
        return Path(args.model)
    import torch

    from sr_deploy.models.descriptor import ModelDescriptor, build_model
    from sr_deploy.models.weights import save_weights

    torch.manual_seed(0)
    desc = ModelDescriptor(scale=4, num_blocks=args.num_blocks, num_features=args.num_features, name="random-srresnet")
    return save_weights(build_model(desc), desc, out / "random-srresnet.safetensors", note="random weights")


def export_models(weights: Path, out: Path) -> dict[str, Path | str]:
    """The three parity-gated ONNX exports through the Python API; a precision maps to its file or to
    why it failed."""
    import sr_deploy as sr

    fp32 = out / "model-fp32.onnx"
    steps: dict[str, Callable[[], os.PathLike[str]]] = {
        "fp32": lambda: sr.export_onnx(weights, fp32),
        "fp16": lambda: sr.export_fp16(fp32, out / "model-fp16.onnx"),
        "int8": lambda: sr.export_int8(fp32, out / "model-int8.onnx", target="tensorrt"),
    }
    files: dict[str, Path | str] = {}
    for precision, step in steps.items():
        if precision != "fp32" and not isinstance(files.get("fp32"), Path):
            files[precision] = "needs the fp32 export"
            continue
        try:
            files[precision] = Path(step())
        except Exception as exc:  # an export that fails its gate is a finding, not a crash
            files[precision] = f"{precision} export failed: {type(exc).__name__}: {exc}"
    return files


def reason_or_none(check: Callable[[], object]) -> str | None:
    try:
        check()
    except Exception as exc:  # every failure here is a reason the path cannot run
        return str(exc) if type(exc).__name__ == "BackendUnavailable" else f"{type(exc).__name__}: {exc}"
    return None


def cuda_reason() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch CUDA build: {torch.version.cuda})"
    return None


def ort_cuda_reason() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime cannot be imported ({exc})"

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (needs onnxruntime-gpu)"
    return cuda_reason()


def tensorrt_reason() -> str | None:
    from sr_deploy.hardware import require_tensorrt

    return reason_or_none(lambda: require_tensorrt(builder=True))


def check(ref: np.ndarray, out: np.ndarray, precision: str) -> tuple[float, float, bool]:
    """(PSNR in dB on the unit scale, max-abs, passed) of ``out`` against ``ref`` (both ``N x 3 x H x W``)
    under ``precision``'s tolerance: the same comparator and rules as the bench."""
    from sr_deploy import compare, tolerance_for

    result = compare([out], [ref], tolerance_for(precision), precision)
    return result.psnr_db, result.max_abs, result.passed


def timed(fn: Callable[[], object], sync: Callable[[], None], warmup: int, runs: int) -> tuple[float, float]:
    """(median, p90) wall time of ``fn`` in ms, synchronising the GPU after each call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def lr_batch(size: int) -> np.ndarray:
    """A real photo (scikit-image's bundled images), cropped to ``size`` x ``size``, 1 x 3 x H x W in [0, 1]."""
    from sr_deploy.data.datasets import embedded_images
    from sr_deploy.data.image_io import hwc_to_nchw, read_image, to_float_rgb

    img = to_float_rgb(read_image(embedded_images("eval")[0]))[:size, :size]
    return np.ascontiguousarray(hwc_to_nchw(img), dtype=np.float32)


def run_checks(args: argparse.Namespace, report: dict[str, Any], results: list[PathResult]) -> None:
    """Fill ``report`` and ``results`` as the checks go, so a failure part-way leaves what was found."""
    out = Path(args.out)
    if args.wheels:
        report["wheels"] = install_wheels(Path(args.wheels))
    report["environment"] = environment()
    x = lr_batch(args.size)
    shape = "x".join(map(str, x.shape))

    import torch

    from sr_deploy.backends.base import BackendUnavailable
    from sr_deploy.backends.pytorch import TorchUpscaler
    from sr_deploy.models.weights import load_weights

    weights = make_weights(args, out)
    report["weights"] = str(weights)
    cuda = cuda_reason()
    device = "cuda" if cuda is None else "cpu"
    net, desc = load_weights(weights, device)
    reference = TorchUpscaler(net, desc, device=device).run(x)
    report["reference"] = f"torch fp32 on {device}"
    sync = torch.cuda.synchronize if cuda is None else (lambda: None)

    def measure(name: str, make: Callable[[], Callable[[], np.ndarray]] | None, reason: str | None = None,
                precision: str = "fp32") -> None:
        """``make()`` sets the path up (inside the error handling) and returns the call to check and time."""
        if reason is not None or make is None:
            results.append(PathResult(name, "not available", reason or "", shape=shape))
            return
        try:
            run = make()
            y = run()
            psnr_db, max_abs, passed = check(reference, y, precision)
            med, p90 = timed(run, sync, args.warmup, args.runs)
            results.append(PathResult(name, "ok", "", psnr_db, max_abs, passed, med, p90, shape))
        except BackendUnavailable as exc:
            results.append(PathResult(name, "not available", str(exc), shape=shape))
        except Exception as exc:  # a path that should run but breaks is reported, not fatal
            results.append(PathResult(name, "failed", f"{type(exc).__name__}: {exc}", shape=shape))
            traceback.print_exc()

    # -- torch CUDA (the package's own TorchUpscaler, CUDA graphs included) ------------------------
    variants = (("fp32", False, False), ("fp16", False, False), ("fp32", True, False), ("fp16", True, False),
                ("fp16", False, True))
    for precision, channels_last, graphs in variants:
        suffix = ("+channels_last" if channels_last else "") + ("+cudagraph" if graphs else "")
        name = f"torch-cuda-{precision}{suffix}"
        measure(name, lambda p=precision, cl=channels_last, g=graphs: partial(  # type: ignore[misc]
            TorchUpscaler(copy.deepcopy(net), desc, device="cuda", precision=p, channels_last=cl, cuda_graphs=g).run,
            x), cuda, precision)

    # -- ONNX exports, ONNX Runtime CUDA, TensorRT ----------------------------------------------
    ort_reason, trt_reason = ort_cuda_reason(), tensorrt_reason()
    report["tensorrt"] = trt_reason or "available"
    exports: dict[str, Path | str] = {}
    if ort_reason is None or trt_reason is None:
        exports = export_models(weights, out)
    report["exports"] = {k: str(v) for k, v in exports.items()}
    for precision in ("fp32", "fp16", "int8"):
        onnx_file = exports.get(precision)
        missing = ort_reason or (None if isinstance(onnx_file, Path) else f"no {precision} ONNX: {onnx_file}")
        measure(f"onnxruntime-cuda-{precision}", lambda f=onnx_file: partial(ort_cuda(f), x),  # type: ignore[misc]
                missing, precision)
    for precision in ("fp32", "fp16", "int8"):
        onnx_file = exports.get(precision)
        missing = trt_reason or (None if isinstance(onnx_file, Path) else f"no {precision} ONNX: {onnx_file}")
        names = (f"tensorrt-{precision}", f"tensorrt-{precision}+cudagraph", f"tensorrt-{precision}-zero-copy")
        if missing is not None or not isinstance(onnx_file, Path):
            for name in names:
                measure(name, None, missing)
            continue
        try:
            engine = build_trt(onnx_file, out, x.shape)
        except Exception as exc:
            for name in names:
                results.append(PathResult(name, "failed", f"engine build: {type(exc).__name__}: {exc}", shape=shape))
            continue
        from sr_deploy.backends.trt import TrtUpscaler

        measure(names[0], lambda e=engine: partial(TrtUpscaler(e).run, x), None, precision)  # type: ignore[misc]
        measure(names[1], lambda e=engine: partial(TrtUpscaler(e, cuda_graphs=True).run, x),  # type: ignore[misc]
                None, precision)
        measure(names[2], lambda e=engine: zero_copy_runner(TrtUpscaler(e), x), None, precision)  # type: ignore[misc]
    int8_layouts(args, report, results, exports, trt_reason, x, measure)


def int8_layouts(args: argparse.Namespace, report: dict[str, Any], results: list[PathResult],
                 exports: dict[str, Path | str], trt_reason: str | None, x: np.ndarray,
                 measure: Callable[..., None]) -> None:
    """INT8 placement on TensorRT: the engine of ModelOpt's Q/DQ ONNX (``--modelopt-onnx``, made by
    ``benchmarks/modelopt_compare.py`` for the same ``--model``) timed beside the project's int8 and fp16, and
    for all three ``IEngineInspector``'s account (``benchmarks/trt_inspect.py``): layers, INT8 layers, fused
    layers, reformats, residual Adds fused into an INT8 convolution."""
    import onnx

    out = Path(args.out)
    modelopt = Path(args.modelopt_onnx) if args.modelopt_onnx else None
    missing = trt_reason or (None if modelopt and modelopt.is_file() else
                             f"no ModelOpt int8 ONNX (--modelopt-onnx {modelopt or 'not given'})")
    engine: Path | None = None
    if missing is None and modelopt is not None:
        try:
            engine = build_trt(modelopt, out, x.shape)
        except Exception as exc:
            missing = f"engine build: {type(exc).__name__}: {exc}"
    if engine is not None:
        from sr_deploy.backends.trt import TrtUpscaler

        measure("tensorrt-int8-modelopt", lambda: partial(TrtUpscaler(engine).run, x), None, "int8")
    else:
        results.append(PathResult("tensorrt-int8-modelopt", "not available", missing or "", shape="x".join(
            map(str, x.shape))))
    layers: dict[str, Any] = {}
    onnx_files = {"fp16": exports.get("fp16"), "int8 (sr-deploy tensorrt layout)": exports.get("int8"),
                  "int8 (ModelOpt)": modelopt}
    for name, onnx_file in onnx_files.items():
        if trt_reason is not None or not isinstance(onnx_file, Path) or not onnx_file.is_file():
            layers[name] = f"not available: {trt_reason or f'no ONNX ({onnx_file})'}"
            continue
        try:
            from trt_inspect import build_detailed, engine_layers, summarize

            adds = [n.name for n in onnx.load(str(onnx_file), load_external_data=False).graph.node
                    if n.op_type == "Add"]
            records = engine_layers(build_detailed(onnx_file, tuple(x.shape)))  # type: ignore[arg-type]
            layers[name] = summarize(records, adds)
            (out / f"layers-{name.split()[0]}-{'modelopt' if 'ModelOpt' in name else 'sr-deploy'}.json").write_text(
                json.dumps(records, indent=1))
        except Exception as exc:  # an inspection that breaks is a finding, not a crash
            layers[name] = f"failed: {type(exc).__name__}: {exc}"
    report["tensorrt_layers"] = layers


def ort_cuda(onnx_file: Path) -> Callable[[np.ndarray], np.ndarray]:
    from sr_deploy.backends.onnxrt import OrtUpscaler, cuda_provider

    return OrtUpscaler(onnx_file, providers=[cuda_provider(), "CPUExecutionProvider"]).run


def build_trt(onnx_file: Path, out: Path, shape: tuple[int, ...]) -> Path:
    """A TensorRT engine for exactly ``shape`` (batch 1 up to ``shape``'s batch) through the Python API."""
    from sr_deploy import build_engine

    n, c, h, w = shape
    result = build_engine(onnx_file, None, min_shape=(1, c, h, w), opt_shape=(n, c, h, w), max_shape=(n, c, h, w),
                          timing_cache=out / "timing.cache", cache_dir=out / "engines")
    return result.engine


def zero_copy_runner(up: Any, x: np.ndarray) -> Callable[[], np.ndarray]:
    """TensorRT on torch CUDA tensors through ``__cuda_array_interface__`` (timed device to device)."""
    import torch

    x_dev = torch.from_numpy(x).cuda()
    out_shape = up.output_shape(tuple(x.shape))
    y_dev = torch.empty(out_shape, dtype=torch.float32, device="cuda")

    def run() -> np.ndarray:
        up.run_device(x_dev, y_dev)
        return y_dev.cpu().numpy()

    return run


def write_results(out: Path, report: dict[str, Any], results: list[PathResult]) -> None:
    from sr_deploy.artifacts import atomic_write_json

    atomic_write_json(out / "results.json", {**report, "paths": [asdict(r) for r in results]})
    try:
        import polars as pl
    except ImportError:
        print("not available: results.csv (polars is not installed; carry its wheel)")
        return
    pl.DataFrame([asdict(r) for r in results]).write_csv(out / "results.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="Folder for results.json, results.csv, ONNX files, engines")
    parser.add_argument("--wheels", help="Folder of wheels to install first (no registry needed)")
    parser.add_argument("--model", help="Weights (.safetensors/.pt) or shipped model name; default random SRResNet")
    parser.add_argument("--num-blocks", type=int, default=16, help="Random model depth")
    parser.add_argument("--num-features", type=int, default=64, help="Random model width")
    parser.add_argument("--size", type=int, default=128, help="LR input side in pixels")
    parser.add_argument("--modelopt-onnx", help="ModelOpt int8 ONNX of --model (benchmarks/modelopt_compare.py)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    results: list[PathResult] = []
    try:
        run_checks(args, report, results)
    except Exception as exc:  # still write what was found before the failure
        report["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    write_results(Path(args.out), report, results)
    print(f"reference: {report.get('reference')}; environment: {json.dumps(report.get('environment'))}")
    for r in results:
        if r.status == "ok":
            verdict = "passes" if r.passed else "FAILS"
            print(f"{r.path}: ok  {r.psnr_db:.2f} dB vs torch fp32, max-abs {r.max_abs:.2e} ({verdict} its "
                  f"precision's parity rule), {r.median_ms:.3f} ms median ({r.shape})")
        else:
            print(f"{r.path}: {r.status}: {r.reason}")
    for name, summary in (report.get("tensorrt_layers") or {}).items():
        print(f"TensorRT layers, {name}: {summary}")
    if "error" in report:
        print(f"stopped early: {report['error']}")
    return 1 if "error" in report or any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
