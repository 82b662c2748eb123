"""TensorRT engine metadata: the JSON sidecar, the engine cache names, and load-time compatibility.

Every engine ``X.engine`` has ``X.engine.json`` beside it saying what it is: sr-deploy and TensorRT
versions, GPU name and compute capability, optimization profiles, precision (from the ONNX
``sr_deploy.precision``), the ONNX sha256 and the build options. From the same facts an engine
cache derives file names (as vs-mlrt does): one request always maps to one name, so the same
request reuses the engine and any change (ONNX bytes, profiles, options, TensorRT, GPU) builds a
new one. A serialized TensorRT engine only runs on the TensorRT version and GPU it was built for
unless built version- or hardware-compatible; :func:`incompatibility` decides that from the
sidecar alone, before anything is deserialised.

Pure Python: nothing here imports TensorRT or touches a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sr_deploy._version import __version__
from sr_deploy.artifacts import atomic_write_json
from sr_deploy.backends.trt_profiles import Profile, format_shape
from sr_deploy.hardware import GpuInfo

#: ``--hardware-compat`` values -> what the engine needs from the GPU that runs it.
HARDWARE_COMPAT = ("none", "same-cc", "ampere+")
SIDECAR_SUFFIX = ".json"


class EngineMetadataError(ValueError):
    """A sidecar is missing or unreadable, or the engine cannot run here (the message says why)."""


def _string(value: object, what: str) -> str:
    """``value`` when it is a string (a sidecar is untrusted JSON), else TypeError naming ``what``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {value!r}")
    return value


@dataclass(frozen=True)
class BuildOptions:
    """What a build was asked for, besides the ONNX file.

    ``profiles``: optimization profiles (validated); ``opt_level``: builder optimization level 0-5;
    ``workspace_gb``: workspace memory-pool limit in GiB (None: TensorRT's default, all device memory);
    ``version_compatible``: engine runs on later TensorRT versions of the same major (lean runtime
    embedded); ``hardware_compat``: one of :data:`HARDWARE_COMPAT`.
    """

    profiles: tuple[Profile, ...]
    opt_level: int = 3
    workspace_gb: float | None = None
    version_compatible: bool = False
    hardware_compat: str = "none"

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ValueError("a build needs at least one optimization profile")
        if not 0 <= self.opt_level <= 5:
            raise ValueError(f"opt_level must be 0..5, got {self.opt_level}")
        if self.workspace_gb is not None and self.workspace_gb <= 0:
            raise ValueError(f"workspace_gb must be a positive number of GiB, got {self.workspace_gb}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise ValueError(f"hardware_compat must be one of {HARDWARE_COMPAT}, got {self.hardware_compat!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profiles"] = [str(p) for p in self.profiles]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildOptions:
        return cls(
            profiles=tuple(Profile.parse(_string(p, "a profile")) for p in d["profiles"]),
            opt_level=int(d["opt_level"]),
            workspace_gb=None if d["workspace_gb"] is None else float(d["workspace_gb"]),
            version_compatible=bool(d["version_compatible"]),
            hardware_compat=str(d["hardware_compat"]),
        )


@dataclass(frozen=True)
class EngineMetadata:
    """The sidecar of one engine. ``onnx_path`` is where the ONNX was when built (for the rebuild hint)."""

    tensorrt_version: str
    gpu: GpuInfo
    precision: str
    onnx_sha256: str
    onnx_path: str
    input_name: str
    options: BuildOptions
    descriptor: dict[str, Any]
    engine_sha256: str = ""
    sr_deploy_version: str = __version__
    build_seconds: float = 0.0
    timing_cache: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sr_deploy_version": self.sr_deploy_version,
            "tensorrt_version": self.tensorrt_version,
            "gpu": {"name": self.gpu.name, "compute_capability": list(self.gpu.compute_capability)},
            "precision": self.precision,
            "onnx_sha256": self.onnx_sha256,
            "onnx_path": self.onnx_path,
            "input_name": self.input_name,
            "options": self.options.to_dict(),
            "descriptor": self.descriptor,
            "engine_sha256": self.engine_sha256,
            "build_seconds": self.build_seconds,
            "timing_cache": self.timing_cache,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineMetadata:
        cc = d["gpu"]["compute_capability"]
        return cls(
            sr_deploy_version=str(d["sr_deploy_version"]),
            tensorrt_version=str(d["tensorrt_version"]),
            gpu=GpuInfo(str(d["gpu"]["name"]), (int(cc[0]), int(cc[1]))),
            precision=str(d["precision"]),
            onnx_sha256=str(d["onnx_sha256"]),
            onnx_path=str(d["onnx_path"]),
            input_name=str(d["input_name"]),
            options=BuildOptions.from_dict(d["options"]),
            descriptor=dict(d["descriptor"]),
            engine_sha256=str(d.get("engine_sha256", "")),
            build_seconds=float(d.get("build_seconds", 0.0)),
            timing_cache=None if d.get("timing_cache") is None else _string(d["timing_cache"], "timing_cache"),
            extra=dict(d.get("extra", {})),
        )


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def write_metadata(engine: str | os.PathLike[str], meta: EngineMetadata) -> Path:
    """Write the sidecar of ``engine`` atomically; returns its path."""
    path = sidecar_path(engine)
    atomic_write_json(path, meta.to_dict())
    return path


def read_metadata(engine: str | os.PathLike[str]) -> EngineMetadata:
    """The sidecar of ``engine``; :class:`EngineMetadataError` naming the file when missing or malformed."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise EngineMetadataError(
            f"{path} is missing: an engine without its metadata sidecar cannot be checked against this "
            f"machine; rebuild it with `sr-deploy build MODEL.onnx -o {engine}`"
        )
    try:
        return EngineMetadata.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # untrusted JSON: wrong types (AttributeError), int(inf) (OverflowError), deep nesting (RecursionError)
        raise EngineMetadataError(
            f"{path} is not a valid sr-deploy engine sidecar ({type(exc).__name__}: {exc})"
        ) from None


def request_key(onnx_sha256: str, options: BuildOptions, tensorrt_version: str, gpu: GpuInfo) -> str:
    """Hex sha256 of everything that makes an engine what it is (canonical JSON)."""
    request = {
        "sr_deploy_version": __version__,
        "onnx_sha256": onnx_sha256,
        "options": options.to_dict(),
        "tensorrt_version": tensorrt_version,
        "gpu": [gpu.name, list(gpu.compute_capability)],
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def cache_file_name(
    onnx_stem: str, precision: str, onnx_sha256: str, options: BuildOptions, tensorrt_version: str, gpu: GpuInfo
) -> str:
    """The engine cache file name of a request, readable like vs-mlrt's and unique by its key.

    ``{onnx stem}.{precision}.{max shape of each profile}.trt{version}.{gpu}-{sm}.{key[:16]}.engine``;
    the readable parts are for people, the key (over every field) is what makes two requests differ.
    """
    shapes = "_".join(f"{p.max[0]}x{p.max[2]}x{p.max[3]}" for p in options.profiles)
    key = request_key(onnx_sha256, options, tensorrt_version, gpu)[:16]
    parts = [_slug(onnx_stem), precision, f"max{shapes}", f"trt{tensorrt_version}", f"{_slug(gpu.name)}-{gpu.sm}", key]
    return ".".join(parts) + ".engine"


def stale_reason(
    meta: EngineMetadata, onnx_sha256: str, options: BuildOptions, tensorrt_version: str, gpu: GpuInfo
) -> str | None:
    """Why an existing engine (described by ``meta``) does not satisfy a build request; None if it does."""
    if meta.onnx_sha256 != onnx_sha256:
        return "the ONNX file changed"
    if meta.options != options:
        return f"build options changed ({meta.options.to_dict()} -> {options.to_dict()})"
    if meta.tensorrt_version != tensorrt_version:
        return f"TensorRT changed ({meta.tensorrt_version} -> {tensorrt_version})"
    if meta.gpu != gpu:
        return f"GPU changed ({meta.gpu.name} {meta.gpu.sm} -> {gpu.name} {gpu.sm})"
    if meta.sr_deploy_version != __version__:
        return f"sr-deploy changed ({meta.sr_deploy_version} -> {__version__})"
    return None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def incompatibility(meta: EngineMetadata, tensorrt_version: str, gpu: GpuInfo) -> list[str]:
    """What keeps an engine built as ``meta`` from running with this TensorRT on this GPU (empty: it runs).

    TensorRT version: the same version, or with ``version_compatible`` a runtime of the same major
    version at least as new as the builder. GPU: with ``hardware_compat`` ``none`` the same GPU model
    and compute capability, ``same-cc`` the same compute capability, ``ampere+`` compute capability 8.0+.
    """
    problems = []
    built, here = _version_tuple(meta.tensorrt_version), _version_tuple(tensorrt_version)
    if meta.options.version_compatible:
        if here[:1] != built[:1] or here < built:
            problems.append(
                f"TensorRT {tensorrt_version} here, engine built version-compatible with {meta.tensorrt_version} "
                f"(needs {built[0]}.x at least as new)"
            )
    elif here[:3] != built[:3]:
        problems.append(f"TensorRT {tensorrt_version} here, engine built with {meta.tensorrt_version}")
    compat = meta.options.hardware_compat
    if compat == "ampere+":
        if gpu.compute_capability < (8, 0):
            problems.append(f"GPU {gpu.name} ({gpu.sm}) here, engine built Ampere+ (needs sm_80 or newer)")
    elif gpu.compute_capability != meta.gpu.compute_capability:
        problems.append(f"GPU {gpu.name} ({gpu.sm}) here, engine built for {meta.gpu.name} ({meta.gpu.sm})")
    elif compat == "none" and gpu.name != meta.gpu.name:
        problems.append(f"GPU {gpu.name} here, engine built for {meta.gpu.name} (same {gpu.sm}; "
                        "build with --hardware-compat same-cc to share engines across these)")
    return problems


def rebuild_command(meta: EngineMetadata, engine: str | os.PathLike[str]) -> str:
    """The ``sr-deploy build`` command line that rebuilds ``engine`` with the options in ``meta``."""
    opts = meta.options
    args = ["sr-deploy", "build", meta.onnx_path, "-o", str(engine)]
    if len(opts.profiles) == 1:
        p = opts.profiles[0]
        args += ["--min", format_shape(p.min), "--opt", format_shape(p.opt), "--max", format_shape(p.max)]
    else:
        for p in opts.profiles:
            args += ["--profiles", str(p)]
    args += ["--opt-level", str(opts.opt_level)]
    if opts.workspace_gb is not None:
        args += ["--workspace", f"{opts.workspace_gb:g}"]
    if opts.version_compatible:
        args.append("--version-compatible")
    if opts.hardware_compat != "none":
        args += ["--hardware-compat", opts.hardware_compat]
    if meta.timing_cache:
        args += ["--timing-cache", meta.timing_cache]
    return shlex.join(args)


def check_compatible(engine: str | os.PathLike[str], meta: EngineMetadata, tensorrt_version: str, gpu: GpuInfo) -> None:
    """Raise :class:`EngineMetadataError` (what differs + the rebuild command) unless the engine runs here."""
    problems = incompatibility(meta, tensorrt_version, gpu)
    if problems:
        raise EngineMetadataError(
            f"engine {engine} cannot run here: " + "; ".join(problems)
            + f". Rebuild it on this machine: {rebuild_command(meta, engine)}"
        )
