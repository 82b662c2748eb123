"""Conversion on demand: the ONNX file or TensorRT engine a route needs, made from PyTorch weights on
first use and reused afterwards (vs-mlrt's habit for engines); int8 for the CPU also from an fp32 ONNX file.

Converted files live in ``<cache>/converted/`` under names derived from the weights' sha256, the
target and the sr-deploy version (engines: also the GPU architecture they were built for, so a cache shared
by machines with different GPUs holds one engine per GPU type), so a changed weights file or a new sr-deploy
gives a new file and an unchanged one is reused without work. Each conversion holds an exclusive lock on
``<file>.lock`` while it works, so processes that need the same file at once (the actors of a cluster job on one
node) make it once: the others wait and reuse it. Each file is made by the export stage's own verified steps
(:func:`~sr_deploy.export.onnx.export_onnx`, :func:`~sr_deploy.export.fp16.export_fp16`,
:func:`~sr_deploy.export.tensorrt.build_engine`) and written atomically, so an interrupted
conversion leaves nothing half-written behind. The cache root is ``$SR_DEPLOY_CACHE``, else
``$XDG_CACHE_HOME/sr-deploy`` (``~/.cache/sr-deploy``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from sr_deploy._version import __version__
from sr_deploy.artifacts import atomic_write_json, locked, sha256_file
from sr_deploy.backends.openvino import openvino_unavailable_reason
from sr_deploy.errors import ExportError
from sr_deploy.export.fp16 import export_fp16
from sr_deploy.export.int8 import export_int8
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.tensorrt import build_engine
from sr_deploy.hardware import gpu_info, this_cpu
from sr_deploy.vocabulary import AUTO

#: File precisions the conversion makes from weights without more input (int8, made for the CPU with an
#: optional accuracy budget, comes from :func:`convert_int8`).
CONVERTIBLE = {"onnx": ("fp32", "fp16"), "engine": ("fp32", "fp16")}
#: The CPU backends that run int8 made on demand (:func:`int8_plan`).
INT8_BACKENDS = ("onnxruntime", "openvino")


def int8_layout_for(vnni: bool, openvino: bool) -> str:
    """The Q/DQ layout of int8 made on demand for a CPU with (or without) VNNI, with (or without) OpenVINO.
    With both: symmetric int8 activations (the ``tensorrt`` layout), which OpenVINO ran 3.1-4.1x faster than
    torch fp32 against 1.8-1.9x for the uint8 ``ort-cpu`` layout at the same accuracy
    (benchmarks/results/amd-epyc-2c). Without VNNI symmetric activations lose accuracy on OpenVINO (23 dB Set5
    on AVX2), and ONNX Runtime runs them slowly: the ``ort-cpu`` layout (uint8 activations)."""
    return "tensorrt" if vnni and openvino else "ort-cpu"


def cpu_int8_layout() -> str:
    """:func:`int8_layout_for` this machine."""
    return int8_layout_for(this_cpu().vnni, openvino_unavailable_reason() is None)


def cpu_int8_engine() -> str:
    """The CPU engine that int8 made on demand is measured on (its budget search and drop): OpenVINO where it
    is installed (the faster int8 engine on every CPU measured: benchmarks/results), else ONNX Runtime."""
    return "openvino" if openvino_unavailable_reason() is None else "onnxruntime"


def int8_plan(backend: str = AUTO) -> tuple[str, str]:
    """``(Q/DQ layout, engine)`` of int8 made on demand to run on ``backend`` (one of :data:`INT8_BACKENDS`, or
    ``auto``: :func:`cpu_int8_layout` on :func:`cpu_int8_engine`); the engine measures its Y-PSNR drop and runs it.
    ONNX Runtime gets the uint8 ``ort-cpu`` layout (it runs symmetric activations about as slowly as fp32),
    OpenVINO the layout :func:`int8_layout_for` gives this CPU."""
    if backend == "onnxruntime":
        return "ort-cpu", "onnxruntime"
    if backend == "openvino":
        return int8_layout_for(this_cpu().vnni, True), "openvino"
    if backend != AUTO:
        raise ValueError(f"int8 is made on demand for {', '.join(INT8_BACKENDS)} or auto, not {backend}")
    return cpu_int8_layout(), cpu_int8_engine()


def cache_root() -> Path:
    """``$SR_DEPLOY_CACHE``, else ``$XDG_CACHE_HOME/sr-deploy``, else ``~/.cache/sr-deploy`` (read at each call)."""
    explicit = os.environ.get("SR_DEPLOY_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sr-deploy"


def converted_path(weights: str | os.PathLike[str], kind: str, precision: str, max_psnr_drop: float | None = None,
                   gpu: str | None = None, backend: str = AUTO) -> Path:
    """Where the ``kind`` (``onnx`` or ``engine``) file in ``precision`` made from ``weights`` (int8: or from an
    fp32 ONNX file) is cached, under the file's sha256
    (int8: an ONNX for ``backend`` (:func:`int8_plan`) made within the Y-PSNR budget ``max_psnr_drop``, or with
    the export's plain-int8 gate for None, on this CPU class; an engine: for the GPU architecture ``gpu``, e.g.
    ``sm_90``, default: CUDA device 0's)."""
    if precision == "int8" and kind == "onnx":
        layout, engine = int8_plan(backend)
        gate = "plain" if max_psnr_drop is None else f"budget{max_psnr_drop:g}"
        tag = f"int8-{layout}-{engine}-{gate}-{this_cpu().isa}"
    elif precision in CONVERTIBLE.get(kind, ()):
        tag = precision if kind == "onnx" else f"{precision}-{gpu or gpu_info().sm}"
    else:
        raise ValueError(f"no conversion of weights to a {precision} {kind}; converted on demand: "
                         + ", ".join(f"{k} {'/'.join(v)}" for k, v in CONVERTIBLE.items()) + ", onnx int8")
    digest = sha256_file(weights)[:20]
    suffix = ".onnx" if kind == "onnx" else ".engine"
    return cache_root() / "converted" / f"{Path(weights).stem}-{digest}-{tag}-v{__version__}{suffix}"


def convert_int8(source: str | os.PathLike[str], max_psnr_drop: float | None,
                 log: Callable[[str], None] | None = None, backend: str = AUTO) -> Path:
    """The cached int8 ONNX of ``source`` (weights, or an fp32 ONNX file with sr-deploy metadata: quantized as it
    is) for ``backend`` (layout and measuring engine: :func:`int8_plan`;
    entropy calibration on the embedded photos, the weights width this CPU needs) whose Y-PSNR drop against
    fp32, measured on this CPU class by that engine, is within ``max_psnr_drop`` dB (None: every layer int8,
    written only within the export's plain limit, :data:`~sr_deploy.export.int8.PLAIN_MAX_DROP_DB`); made now if
    it is not there yet (SRResNet x4 on 2 cores: about 20 s, a minute with a budget search). Raises
    :class:`~sr_deploy.errors.ExportError` when the int8 model loses more than that: no model is cached then, only
    the refusal (``<file>.refused.json``, same key), so asking again answers at once instead of measuring again."""
    target = converted_path(source, "onnx", "int8", max_psnr_drop, backend=backend)
    refusal = target.with_name(target.name + ".refused.json")
    if target.is_file():
        return target
    _raise_recorded(refusal)
    layout, engine = int8_plan(backend)
    fp32 = Path(source) if Path(source).suffix.lower() == ".onnx" else convert(source, "onnx", "fp32", log)
    with locked(target):
        _raise_recorded(refusal)  # refused in another process while this one waited
        if not target.is_file():  # made by another process while this one waited
            note = log or (lambda _m: None)
            within = "every layer int8" if max_psnr_drop is None else f"within {max_psnr_drop:g} dB"
            note(f"quantizing {fp32.name} to int8 for {engine} ({layout} layout, {within}; first use, cached for "
                 "next time)")
            try:
                export_int8(fp32, target, target=layout, max_psnr_drop=max_psnr_drop, measure_on=engine,
                            on_step=log)
            except ExportError as exc:
                atomic_write_json(refusal, {"error": str(exc), "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
                raise
    return target


def _raise_recorded(refusal: Path) -> None:
    """Raise the :class:`~sr_deploy.errors.ExportError` recorded in ``refusal`` when there is one (an unreadable
    record counts as none: the conversion runs again and rewrites it)."""
    try:
        record = json.loads(refusal.read_text())
        error, at = str(record["error"]), str(record["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    raise ExportError(f"{error} (measured {at}, cached: delete {refusal} to measure again)")


def convert(
    weights: str | os.PathLike[str], kind: str, precision: str, log: Callable[[str], None] | None = None
) -> Path:
    """The cached ``kind`` file in ``precision`` for ``weights``, made now if it is not there yet."""
    target = converted_path(weights, kind, precision)
    if target.is_file():
        return target
    note = log or (lambda _m: None)
    if kind == "engine":
        onnx_file = convert(weights, "onnx", precision, log)
        with locked(target):
            if not target.is_file():  # built by another process while this one waited
                note(f"building {target.name} from {onnx_file.name} (first use; cached for next time)")
                build_engine(onnx_file, target, log=note)
        return target
    fp32 = converted_path(weights, "onnx", "fp32")
    with locked(fp32):
        if not fp32.is_file():
            note(f"exporting {fp32.name} from {weights} (first use; cached for next time)")
            export_onnx(weights, fp32)
    if precision == "fp16":
        with locked(target):
            if not target.is_file():
                note(f"converting {fp32.name} to fp16 (first use; cached for next time)")
                export_fp16(fp32, target)
    return target
