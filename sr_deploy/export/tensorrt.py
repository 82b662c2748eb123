"""Build TensorRT engines from sr-deploy ONNX files: strongly typed, profiled, timing-cached, with sidecar.

Precision comes from the ONNX graph itself (the export stage writes fp32, fp16 and Q/DQ int8
graphs): the network is created ``STRONGLY_TYPED``, so TensorRT follows the graph's types and no
``BuilderFlag.FP16/INT8`` or calibrator is used. The same code targets TensorRT 10.x (where the
flag opts in) and 11.x (strongly typed only). Written against the TensorRT Python API and
type-checked with its stubs (``tests/typecheck_tensorrt.sh``); without a GPU nothing here runs
past :func:`sr_deploy.hardware.require_tensorrt`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sr_deploy.artifacts import atomic_write_bytes, locked, sha256_file
from sr_deploy.backends.onnx_metadata import PRECISION, load_sr_onnx, read_props
from sr_deploy.backends.trt_metadata import (
    BuildOptions,
    EngineMetadata,
    EngineMetadataError,
    cache_file_name,
    read_metadata,
    stale_reason,
    write_metadata,
)
from sr_deploy.backends.trt_profiles import Profile, Shape, plan_profiles
from sr_deploy.errors import ExportError
from sr_deploy.hardware import GpuInfo, cuda_call, cudart, tensorrt_environment

if TYPE_CHECKING:
    import tensorrt as trt

_HARDWARE_LEVELS = {"same-cc": "SAME_COMPUTE_CAPABILITY", "ampere+": "AMPERE_PLUS"}


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_engine` produced: the engine, its metadata, and whether it was reused."""

    engine: Path
    metadata: EngineMetadata
    reused: bool
    reason: str


def parser_errors(parser: trt.OnnxParser, onnx_path: str | os.PathLike[str]) -> str:
    """Every error of a failed ``OnnxParser`` parse, one per line, with node names and operators."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = f"node {err.node()} {err.node_name()!r} ({err.node_operator()})" if err.node() >= 0 else "graph"
        lines.append(f"  {node}: {err.desc()} [{err.code()}]")
    return f"TensorRT could not parse {onnx_path}:\n" + "\n".join(lines)


def update_file(path: str | os.PathLike[str], merge: Callable[[bytes | None], bytes]) -> bytes:
    """Replace ``path`` by ``merge(current bytes or None)``, under a lock and atomically; returns the bytes.

    Used for the timing cache: concurrent builds each merge their timings into what is on disk at
    that moment, so no build's timings are lost and no reader ever sees a partial file.
    """
    p = Path(path)
    with locked(p):
        current = p.read_bytes() if p.is_file() else None
        data = merge(current)
        atomic_write_bytes(p, data)
    return data


def _read_timing_cache(path: Path | None) -> bytes:
    if path is None or not path.is_file():
        return b""
    return path.read_bytes()


def _network(builder: trt.Builder) -> trt.INetworkDefinition:
    """A strongly typed network: tensor types come from the ONNX graph (TensorRT 11: the only mode)."""
    import tensorrt as trt

    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def _configure(
    builder: trt.Builder, config: trt.IBuilderConfig, input_name: str, options: BuildOptions
) -> None:
    import tensorrt as trt

    config.builder_optimization_level = options.opt_level
    if options.workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * (1 << 30)))
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compat != "none":
        level = getattr(trt.HardwareCompatibilityLevel, _HARDWARE_LEVELS[options.hardware_compat])
        config.hardware_compatibility_level = level
    for profile in options.profiles:
        trt_profile = builder.create_optimization_profile()
        dims = [trt.Dims(list(shape)) for shape in (profile.min, profile.opt, profile.max)]
        trt_profile.set_shape(input_name, dims[0], dims[1], dims[2])
        config.add_optimization_profile(trt_profile)


def _serialize_timing_cache(config: trt.IBuilderConfig) -> bytes:
    return bytes(config.get_timing_cache().serialize())


def _merge_timing_cache(config: trt.IBuilderConfig, on_disk: bytes | None) -> bytes:
    """Fold the cache now on disk (another build may have updated it) into this build's, serialized."""
    ours = config.get_timing_cache()
    if on_disk:
        theirs = config.create_timing_cache(on_disk)
        ours.combine(theirs, False)
    return bytes(ours.serialize())


def build_engine(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    profiles: Sequence[Profile] = (),
    min_shape: Shape | None = None,
    opt_shape: Shape | None = None,
    max_shape: Shape | None = None,
    opt_level: int = 3,
    workspace_gb: float | None = None,
    version_compatible: bool = False,
    hardware_compat: str = "none",
    timing_cache: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    device: int = 0,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build (or reuse) a strongly typed TensorRT engine for the sr-deploy ONNX ``onnx_path``.

    ``output``: the engine path; or ``cache_dir``: engines named by :func:`cache_file_name` there.
    Shapes: ``profiles``, or ``min_shape`` / ``opt_shape`` / ``max_shape`` NCHW tuples (missing ones
    from :func:`~sr_deploy.backends.trt_profiles.default_profile`), validated against the model's
    descriptor. ``opt_level`` 0-5, ``workspace_gb``, ``version_compatible`` and ``hardware_compat``
    (see :class:`BuildOptions`). An existing engine whose sidecar matches the request (ONNX sha256,
    options, TensorRT, GPU) is reused unless ``force``. ``timing_cache``: a file read before and
    merged/updated after the build. Raises :class:`~sr_deploy.errors.BackendUnavailable` without
    TensorRT or a GPU, :class:`~sr_deploy.backends.trt_profiles.ProfileError` for bad shapes and
    :class:`ExportError` for bad ONNX, parse errors or a failed build.
    """
    if (output is None) == (cache_dir is None):
        raise ValueError("give exactly one of an output engine path or an engine cache folder (cache_dir)")
    onnx_p = Path(onnx_path)
    model, desc = load_sr_onnx(onnx_p, precision=None)
    precision = read_props(model).get(PRECISION, "fp32")
    input_name = model.graph.input[0].name
    del model
    options = BuildOptions(plan_profiles(desc, min_shape, opt_shape, max_shape, profiles), opt_level, workspace_gb,
                           version_compatible, hardware_compat)
    version, gpu = tensorrt_environment(builder=True, device=device)
    onnx_sha = sha256_file(onnx_p)
    engine = _engine_path(onnx_p, output, cache_dir, precision, onnx_sha, options, version, gpu)
    reason = "forced rebuild" if force else _reuse_check(engine, onnx_sha, options, version, gpu)
    if reason is None:
        return BuildResult(engine, read_metadata(engine), reused=True, reason="up to date")
    log(f"building {engine.name} ({reason}) with TensorRT {version} on {gpu.name} ({gpu.sm})")

    import tensorrt as trt

    # the builder times kernels on the thread's current device: make it the one named in the sidecar
    cuda_call(cudart().cudaSetDevice(device), f"cudaSetDevice({device})")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _network(builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_p)):
        raise ExportError(parser_errors(parser, onnx_p))
    config = builder.create_builder_config()
    _configure(builder, config, input_name, options)
    cache_p = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(_read_timing_cache(cache_p))
    if not config.set_timing_cache(cache, False):
        log(f"timing cache {cache_p} was made for another GPU or TensorRT; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_p} (see the TensorRT log above)")
    atomic_write_bytes(engine, bytes(serialized))
    if cache_p is not None:
        update_file(cache_p, lambda on_disk: _merge_timing_cache(config, on_disk))
    meta = EngineMetadata(
        tensorrt_version=version,
        gpu=gpu,
        precision=precision,
        onnx_sha256=onnx_sha,
        onnx_path=str(onnx_p),
        input_name=input_name,
        options=options,
        descriptor=desc.to_dict(),
        engine_sha256=sha256_file(engine),
        build_seconds=round(seconds, 3),
        timing_cache=str(cache_p) if cache_p else None,
    )
    write_metadata(engine, meta)
    return BuildResult(engine, meta, reused=False, reason=reason)


def _engine_path(
    onnx_p: Path,
    output: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    precision: str,
    onnx_sha: str,
    options: BuildOptions,
    version: str,
    gpu: GpuInfo,
) -> Path:
    if output is not None:
        return Path(output)
    assert cache_dir is not None
    return Path(cache_dir) / cache_file_name(onnx_p.stem, precision, onnx_sha, options, version, gpu)


def _reuse_check(engine: Path, onnx_sha: str, options: BuildOptions, version: str, gpu: GpuInfo) -> str | None:
    """None when ``engine`` exists with a sidecar matching the request; else why it must be built."""
    if not engine.is_file():
        return "no engine yet"
    try:
        meta = read_metadata(engine)
    except EngineMetadataError as exc:
        return str(exc)
    if meta.engine_sha256 and meta.engine_sha256 != sha256_file(engine):
        return "the engine file does not match its sidecar"
    return stale_reason(meta, onnx_sha, options, version, gpu)
