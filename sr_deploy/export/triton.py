"""A Triton Inference Server model repository from an sr-deploy ONNX file or TensorRT engine.

``write_triton_repo(repo, name, onnx=... | engine=...)`` writes::

    repo/<name>/config.pbtxt
    repo/<name>/1/model.onnx    (platform onnxruntime_onnx)   or   repo/<name>/1/model.plan (tensorrt_plan)

Inputs and outputs are named and shaped from the artifact: the ONNX graph's input and output (a dynamic
dimension is -1), or for an engine its sidecar's input name and optimization profiles (a dimension that
differs between a profile's min and max is -1; ``max_batch_size`` is at most the profiles' largest batch).
The output of a fixed input size is ``scale`` times larger. Dynamic batching waits at most
``batch_wait_ms`` for a batch to fill; ``instances`` copies of the model run on ``kind`` (``gpu`` or
``cpu``). For ONNX on GPU, Triton's ONNX Runtime backend is told to run the graph through its TensorRT
execution provider in the file's precision (FP32, FP16; INT8 for Q/DQ files), with an engine cache.

The text follows Triton's ``model_config.proto`` (checked in tests/export/test_triton.py by parsing it
with Triton's own ``ModelConfig`` message from ``tritonclient``); Triton itself is not run here.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from sr_deploy.artifacts import atomic_open, atomic_write_bytes
from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.trt_metadata import read_metadata, sidecar_path
from sr_deploy.errors import ExportError, ModelFileError
from sr_deploy.models.descriptor import ModelDescriptor

#: Triton's data type names for the ONNX element types sr-deploy models use
_TRITON_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}
_TRT_PRECISION = {"fp32": "FP32", "fp16": "FP16", "bf16": "FP32", "int8": "INT8"}
KINDS = ("gpu", "cpu")
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 5.0
#: TensorRT workspace Triton's ONNX Runtime backend may use (bytes)
TRT_WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, Triton data type and dims without the batch dimension (-1: dynamic)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonModel:
    """What :func:`write_triton_repo` wrote: the model folder, the config file and the model file."""

    folder: Path
    config: Path
    model_file: Path
    max_batch_size: int
    input: TensorSpec
    output: TensorSpec


def model_name(text: str) -> str:
    """A Triton model (folder) name from ``text``: letters, digits, ``-``, ``_`` and ``.`` kept, the rest ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".")
    if not name:
        raise ValueError(f"cannot make a Triton model name from {text!r}")
    return name


def _onnx_dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
            for d in value.type.tensor_type.shape.dim]


def _onnx_specs(path: Path, max_batch: int | None) -> tuple[int, TensorSpec, TensorSpec, str]:
    """(max_batch_size, input, output, precision) of an sr-deploy ONNX file."""
    props = onnx_metadata.file_props(path)  # checks the file and its external-data locations
    if onnx_metadata.DESCRIPTOR not in props:
        raise ModelFileError(f"{path} was not written by sr-deploy (no '{onnx_metadata.DESCRIPTOR}' metadata)")
    model = onnx.load(str(path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelFileError(f"{path} keeps weights in external data files: the Triton hand-off copies one "
                             "file; re-export it as a single file")
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ModelFileError(f"{path}: expected one input and one output, found {len(model.graph.input)} and "
                             f"{len(model.graph.output)}")
    specs = []
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = _onnx_dims(value)
        kind = _TRITON_TYPES.get(value.type.tensor_type.elem_type)
        if len(dims) != 4 or kind is None:
            raise ModelFileError(f"{path}: {value.name!r} is not an N x C x H x W float tensor")
        specs.append((value.name, kind, dims))
    batch = specs[0][2][0]
    if batch == -1:
        max_batch_size = DEFAULT_MAX_BATCH if max_batch is None else max_batch
    else:  # a fixed batch: Triton sees the whole shape and does not batch
        if max_batch not in (None, 0):
            raise ExportError(f"{path} has a fixed batch of {batch}: it cannot be batched up to {max_batch}")
        max_batch_size = 0
    tensors = tuple(TensorSpec(n, k, tuple(d[1:] if max_batch_size else d)) for n, k, d in specs)
    return max_batch_size, tensors[0], tensors[1], props.get(onnx_metadata.PRECISION, "fp32")


def _engine_specs(path: Path, max_batch: int | None) -> tuple[int, TensorSpec, TensorSpec, str]:
    """(max_batch_size, input, output, precision) of an engine, from its sidecar's profiles."""
    meta = read_metadata(path)
    profiles = meta.options.profiles
    scale = ModelDescriptor.from_dict(meta.descriptor).scale
    largest = max(p.max[0] for p in profiles)
    if max_batch is not None and max_batch > largest:
        raise ExportError(f"{path}: max batch {max_batch} is larger than the engine's optimization profiles "
                          f"allow ({largest}); rebuild it with a larger --max batch or ask for less")
    max_batch_size = largest if max_batch is None else max_batch
    dims_in = []
    for axis in (1, 2, 3):
        lows = {p.min[axis] for p in profiles}
        highs = {p.max[axis] for p in profiles}
        dims_in.append(lows.pop() if len(lows | highs) == 1 else -1)
    dims_out = [dims_in[0]] + [d * scale if d > 0 else -1 for d in dims_in[1:]]
    return (max_batch_size, TensorSpec(meta.input_name, "TYPE_FP32", tuple(dims_in)),
            TensorSpec(onnx_metadata.OUTPUT_NAME, "TYPE_FP32", tuple(dims_out)), meta.precision)


def _tensor_text(key: str, spec: TensorSpec) -> str:
    return (f"{key} [\n  {{\n    name: \"{spec.name}\"\n    data_type: {spec.data_type}\n"
            f"    dims: [ {', '.join(str(d) for d in spec.dims)} ]\n  }}\n]\n")


def config_text(name: str, platform: str, max_batch_size: int, inp: TensorSpec, out: TensorSpec, *,
                instances: int, kind: str, batch_wait_ms: float, precision: str | None) -> str:
    """The ``config.pbtxt`` text (Triton's ``ModelConfig`` in protobuf text format). ``precision``: for an ONNX
    model on GPU, the TensorRT execution provider's precision; None: no accelerator section."""
    lines = [f"name: \"{name}\"", f"platform: \"{platform}\"", f"max_batch_size: {max_batch_size}"]
    text = "\n".join(lines) + "\n" + _tensor_text("input", inp) + _tensor_text("output", out)
    if max_batch_size > 0:
        text += (f"dynamic_batching {{\n  max_queue_delay_microseconds: {round(batch_wait_ms * 1000)}\n}}\n")
    text += f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]\n"
    if precision is not None:
        params = {"precision_mode": _TRT_PRECISION.get(precision, "FP32"),
                  "max_workspace_size_bytes": str(TRT_WORKSPACE_BYTES), "trt_engine_cache_enable": "1"}
        body = "\n".join(f"        parameters {{ key: \"{k}\" value: \"{v}\" }}" for k, v in params.items())
        text += ("optimization {\n  execution_accelerators {\n    gpu_execution_accelerator : [\n      {\n"
                 f"        name : \"tensorrt\"\n{body}\n      }}\n    ]\n  }}\n}}\n")
    return text


def write_triton_repo(
    repo: str | os.PathLike[str],
    name: str,
    *,
    onnx_path: str | os.PathLike[str] | None = None,
    engine: str | os.PathLike[str] | None = None,
    max_batch: int | None = None,
    instances: int = 1,
    kind: str = "gpu",
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
) -> TritonModel:
    """Write ``repo/<name>/config.pbtxt`` and ``repo/<name>/1/model.onnx`` (from ``onnx_path``) or
    ``model.plan`` (from ``engine``, its sidecar copied beside it as ``model.plan.json``); see the module
    docstring. ``max_batch``: Triton's ``max_batch_size`` (None: 8 for ONNX, the profiles' largest batch
    for an engine). Files are written atomically; an existing config or model file is replaced."""
    if (onnx_path is None) == (engine is None):
        raise ValueError("give exactly one of onnx_path and engine")
    bad = [f"{label} must be {rule}, got {value}" for label, value, rule, wrong in (
        ("instances", instances, ">= 1", instances < 1),
        ("max_batch", max_batch, ">= 0 (0: no batching)", max_batch is not None and max_batch < 0),
        ("batch_wait_ms", batch_wait_ms, ">= 0", batch_wait_ms < 0)) if wrong]
    if bad:
        raise ValueError("; ".join(bad))
    if kind not in KINDS:
        raise ValueError(f"unknown instance kind {kind!r}; choose from {', '.join(KINDS)}")
    name = model_name(name)
    folder = Path(repo) / name
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    if engine is not None:
        source = Path(engine)
        if kind != "gpu":
            raise ValueError(f"a TensorRT engine runs on a GPU only, not on kind {kind!r}")
        if not source.is_file():
            raise ModelFileError(f"TensorRT engine {source} does not exist")
        max_batch_size, inp, out, _ = _engine_specs(source, max_batch)
        target, platform, precision = version / "model.plan", "tensorrt_plan", None
        atomic_write_bytes(sidecar_path(target), sidecar_path(source).read_bytes())
    else:
        source = Path(onnx_path)  # type: ignore[arg-type]
        max_batch_size, inp, out, file_precision = _onnx_specs(source, max_batch)
        target, platform = version / "model.onnx", "onnxruntime_onnx"
        precision = file_precision if kind == "gpu" else None
    with open(source, "rb") as src, atomic_open(target) as dst:
        shutil.copyfileobj(src, dst)
    config = folder / "config.pbtxt"
    text = config_text(name, platform, max_batch_size, inp, out, instances=instances, kind=kind,
                       batch_wait_ms=batch_wait_ms, precision=precision)
    atomic_write_bytes(config, text.encode())
    return TritonModel(folder, config, target, max_batch_size, inp, out)


def export_triton(
    model: str | os.PathLike[str],
    repo: str | os.PathLike[str],
    *,
    onnx_path: str | os.PathLike[str] | None = None,
    engine: str | os.PathLike[str] | None = None,
    name: str | None = None,
    **settings: object,
) -> TritonModel:
    """:func:`write_triton_repo` for ``model`` (a shipped name, weights, an ``.onnx`` file or an engine):
    from ``onnx_path`` or ``engine`` when given, else from ``model`` itself when it is an ONNX file or an
    engine, else from an fp32 ONNX exported from it (parity-gated). ``name``: the Triton model name
    (default: ``model``'s name without its suffix). ``settings``: ``max_batch``, ``instances``, ``kind``,
    ``batch_wait_ms``."""
    from sr_deploy.export.onnx import export_onnx

    if onnx_path is not None and engine is not None:
        raise ValueError("give at most one of onnx_path and engine")
    source = Path(model)
    suffix = source.suffix.lower()
    if onnx_path is None and engine is None:
        if suffix == ".onnx":
            onnx_path = source
        elif suffix in (".engine", ".plan"):
            engine = source
    name = name or (source.stem if suffix else os.fspath(model))
    if onnx_path is not None or engine is not None:
        return write_triton_repo(repo, name, onnx_path=onnx_path, engine=engine, **settings)  # type: ignore[arg-type]
    staging = Path(repo) / f".{model_name(name)}.export"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        exported = export_onnx(model, staging / "model.onnx").path
        return write_triton_repo(repo, name, onnx_path=exported, **settings)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
