"""``sr-deploy pipeline`` / ``sr-deploy demo``: weights -> ONNX fp32 -> fp16 -> int8 -> engines -> bench -> report.

Every step is keyed on the sha256 of its input files (weights, ONNX, every calibration and validation image)
plus its options, and recorded in ``OUT/manifest.json`` with the sha256 of what it wrote, the seconds it took
and the machine it ran on (CPU model, ISA class, cores, GPUs). A step whose key matches and whose outputs are
still there, unchanged, is skipped; so a second call with the same inputs does no work, and changing one input
redoes exactly the steps downstream of it. TensorRT engines are built only where TensorRT and a GPU are
available, else the step is recorded as ``not available: <reason>``.

Files in ``OUT``: ``model.fp32.onnx``, ``model.fp16.onnx``, ``model.int8-ort.onnx`` (ort-cpu layout,
``onnxruntime`` target), ``model.int8-trt.onnx`` (tensorrt layout), ``engines/*.engine``,
``bench/`` (the results folder and ``bench/report.md``), ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sr_deploy.artifacts import atomic_write_json, sha256_file
from sr_deploy.bench.config import QUICK, BenchConfig
from sr_deploy.bench.environment import cpu_info, gpu_info
from sr_deploy.bench.report import write_report
from sr_deploy.bench.run import run_bench
from sr_deploy.compare import Comparison
from sr_deploy.data.datasets import collect_images
from sr_deploy.export.fp16 import export_fp16
from sr_deploy.export.int8 import export_int8
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.qdq import DEFAULT_METHOD
from sr_deploy.export.tensorrt import build_engine
from sr_deploy.hardware import tensorrt_unavailable_reason
from sr_deploy.models.zoo import resolve_weights
from sr_deploy.vocabulary import BACKENDS

TARGETS = ("onnxruntime", "tensorrt")
MANIFEST = "manifest.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    """``model``: weights or shipped name; ``calib`` / ``val``: image folders (None: embedded photos);
    ``targets``: subset of :data:`TARGETS`; ``max_psnr_drop``: int8 accuracy budget (dB);
    ``int8_method``: int8 calibration method (entropy measured best on SRResNet x4: see README);
    ``calib_images``: calibration images used (None: all); ``bench``: keyword overrides of
    :class:`~sr_deploy.bench.config.BenchConfig` (sizes, repeats ...)."""

    model: str
    calib: str | None = None
    val: str | None = None
    targets: tuple[str, ...] = TARGETS
    max_psnr_drop: float = 0.05
    int8_method: str = DEFAULT_METHOD
    calib_images: int | None = None
    bench: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"unknown targets {bad or self.targets}; choose from {', '.join(TARGETS)}")


@dataclass
class StepResult:
    """One row of the summary: ``status`` is ``done``, ``skipped`` (up to date) or ``not available``."""

    step: str
    status: str
    seconds: float
    outputs: list[str]
    note: str = ""


def folder_digest(folder: str | None, split: str) -> str:
    """sha256 over the names and contents of the images of ``folder`` (or of the embedded ``split``)."""
    h = hashlib.sha256()
    for path in collect_images([folder] if folder else None, split=split):
        h.update(path.name.encode() + b"\0" + sha256_file(path).encode())
    return h.hexdigest()


def step_key(inputs: Sequence[str | os.PathLike[str]], options: dict[str, Any]) -> str:
    """sha256 of the input files' sha256s and the options (JSON, sorted keys)."""
    payload = {"inputs": [sha256_file(p) for p in inputs], "options": options}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def machine() -> dict[str, Any]:
    """What a step ran on, for the manifest: CPU model, ISA class, logical cores and GPU names."""
    cpu = cpu_info()
    return {"cpu": cpu["model"], "isa_class": cpu["isa_class"], "cores": cpu["logical_cores"],
            "gpus": [g["name"] for g in gpu_info()]}


class Manifest:
    """``OUT/manifest.json``: per step its key, its outputs (paths relative to OUT) with their sha256,
    status, note, the seconds it took and the :func:`machine` it ran on."""

    def __init__(self, out: Path, log: Log = print) -> None:
        self.root, self.path = out, out / MANIFEST
        self.steps: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.steps = json.loads(self.path.read_text()).get("steps", {})
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
                self.steps = {}  # a damaged manifest only costs a rebuild
                log(f"{self.path} cannot be read: every step runs again (and rewrites it)")

    def up_to_date(self, step: str, key: str) -> bool:
        entry = self.steps.get(step)
        if not entry or entry.get("key") != key:
            return False
        files = [(self.root / name, digest) for name, digest in entry["outputs"].items()]
        return all(f.is_file() and sha256_file(f) == digest for f, digest in files)

    def record(self, step: str, key: str, outputs: Sequence[Path], status: str, note: str, seconds: float) -> None:
        self.steps[step] = {"key": key, "outputs": {str(p.relative_to(self.root)): sha256_file(p) for p in outputs},
                            "status": status, "note": note, "seconds": round(seconds, 2), "machine": machine()}
        atomic_write_json(self.path, {"steps": self.steps})


class _Steps:
    def __init__(self, out: Path, log: Log) -> None:
        self.manifest, self.log = Manifest(out, log), log
        self.results: list[StepResult] = []

    def step(self, name: str, key: str, outputs: list[Path], work: Callable[[], str]) -> None:
        """Run ``work`` (which returns a note) unless the manifest says this step is done for ``key``."""
        start = time.perf_counter()
        if self.manifest.up_to_date(name, key):
            self.results.append(StepResult(name, "skipped", 0.0, [str(p) for p in outputs], "up to date"))
            self.log(f"{name}: up to date")
            return
        self.log(f"{name}: running")
        note = work()
        seconds = time.perf_counter() - start
        self.manifest.record(name, key, outputs, "done", note, seconds)
        self.results.append(StepResult(name, "done", seconds, [str(p) for p in outputs], note))

    def unavailable(self, name: str, reason: str) -> None:
        self.results.append(StepResult(name, "not available", 0.0, [], reason))
        self.log(f"{name}: not available: {reason}")


def run_pipeline(config: PipelineConfig, out: str | os.PathLike[str], log: Log = print) -> list[StepResult]:
    """Run (or skip, when done) every step for ``config`` into ``out``; returns the summary rows.

    The last row is the report (its output is ``out/bench/report.md``). Raises the export stage's
    errors (ValueError subclasses naming the file) when an export fails its gate.
    """
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(config.model)
    calib_digest = folder_digest(config.calib, "train")
    val_digest = folder_digest(config.val, "eval")
    run = _Steps(d, log)
    fp32, fp16 = d / "model.fp32.onnx", d / "model.fp16.onnx"

    def onnx_step() -> str:
        return _gate_note(export_onnx(weights, fp32).parity)

    run.step("export fp32", step_key([weights], {"opset": "default"}), [fp32], onnx_step)

    def fp16_step() -> str:
        r = export_fp16(fp32, fp16, calib=config.calib, num_images=config.calib_images)
        return f"{len(r.fp32_nodes)} node(s) kept in fp32; {_gate_note(r.parity)}"

    run.step("export fp16", step_key([fp32], {"calib": calib_digest, "images": config.calib_images}), [fp16],
             fp16_step)
    int8_files: dict[str, Path] = {}
    for target in config.targets:
        layout = "ort-cpu" if target == "onnxruntime" else "tensorrt"
        path = d / f"model.int8-{'ort' if target == 'onnxruntime' else 'trt'}.onnx"
        int8_files[target] = path

        def int8_step(layout: str = layout, path: Path = path) -> str:
            r = export_int8(fp32, path, target=layout, calib=config.calib, method=config.int8_method,
                            num_images=config.calib_images, max_psnr_drop=config.max_psnr_drop, val=config.val,
                            on_step=log)
            budget = r.budget
            drop = f"Y-PSNR drop {budget.final_drop:.3f} dB, {len(budget.excluded)} layer(s) left in float" \
                if budget else "no budget"
            return f"{layout} layout: {drop}"

        options = {"layout": layout, "method": config.int8_method, "calib": calib_digest, "val": val_digest,
                   "images": config.calib_images, "max_psnr_drop": config.max_psnr_drop}
        run.step(f"export int8 ({layout})", step_key([fp32], options), [path], int8_step)
    engines = _engines_step(run, d, [fp32, fp16, int8_files.get("tensorrt")], config, log)
    onnx_files = (fp32, fp16, int8_files["onnxruntime"]) if "onnxruntime" in config.targets else (fp32, fp16)
    bench = bench_config(config, weights, onnx_files, engines)
    report = d / "bench" / "report.md"

    def bench_step() -> str:
        run_bench(bench, d / "bench", log=log)
        return "results in bench/"

    bench_outputs = [d / "bench" / f"{t}.parquet" for t in ("variants", "parity", "accuracy", "latency")]
    run.step("bench", step_key([weights, *onnx_files, *engines], {**bench.to_dict(), "val": val_digest}),
             bench_outputs, bench_step)

    def report_step() -> str:
        write_report(d / "bench")
        return str(report)

    run.step("report", step_key(bench_outputs, {}), [report], report_step)
    return run.results


def bench_config(config: PipelineConfig, weights: Path, onnx_files: Sequence[Path], engines: Sequence[Path]
                 ) -> BenchConfig:
    """The bench of the pipeline's files: every backend, TensorRT only with the ``tensorrt`` target; ``config.bench``
    overrides any setting."""
    backends = {} if "tensorrt" in config.targets else {"backends": tuple(b for b in BACKENDS if b != "tensorrt")}
    return BenchConfig(model=str(weights), onnx=tuple(str(p) for p in onnx_files),
                       engines=tuple(str(p) for p in engines), data=(config.val,) if config.val else (),
                       **{**backends, **config.bench})


def _gate_note(report: Comparison) -> str:
    """``parity passed (min PSNR 97.4 dB, gate 100)`` from an export gate's :class:`Comparison`."""
    worst = min(r["psnr_db"] for r in report.rows)
    return f"parity {'passed' if report.passed else 'FAILED'} (min PSNR {worst:.1f} dB, gate {report.min_psnr_db:g})"


def _engines_step(run: _Steps, d: Path, onnx_files: list[Path | None], config: PipelineConfig,
                  log: Log) -> list[Path]:
    """Build one engine per ONNX file for the tensorrt target (reuse is decided by ``build_engine``
    from the engine's sidecar); not available without TensorRT or a GPU."""
    if "tensorrt" not in config.targets:
        return []
    reason = tensorrt_unavailable_reason(builder=True)
    if reason is not None:
        run.unavailable("tensorrt engines", reason)
        return []
    start = time.perf_counter()
    built: list[Path] = []
    notes = []
    for onnx_path in (p for p in onnx_files if p is not None):
        result = build_engine(onnx_path, d / "engines" / f"{onnx_path.stem}.engine",
                              timing_cache=d / "engines" / "timing.cache", log=log)
        built.append(result.engine)
        notes.append(f"{result.engine.name}: {'reused' if result.reused else 'built'}")
    run.results.append(StepResult("tensorrt engines", "done", time.perf_counter() - start,
                                  [str(p) for p in built], "; ".join(notes)))
    return built


#: The demo's bench settings: the ``--quick`` preset on one image, with a tighter time budget
#: (a few minutes on a 2-core CPU with the paper-size model).
DEMO_BENCH: dict[str, Any] = {**QUICK, "max_batch_pixels": 2 * 32 * 32, "budget_s": 2.0, "max_images": 1}


def run_demo(out: str | os.PathLike[str], model: str = "srresnet-x4", log: Log = print,
             bench: dict[str, Any] | None = None) -> tuple[list[StepResult], Path]:
    """The pipeline on ``model`` with the embedded images and quick settings (2 calibration images,
    budget 0.1 dB); returns the summary and the report path."""
    config = PipelineConfig(model=model, calib_images=2, max_psnr_drop=0.1, bench=bench or DEMO_BENCH)
    results = run_pipeline(config, out, log)
    return results, Path(out) / "bench" / "report.md"
