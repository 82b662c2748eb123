"""The variants a benchmark compares (backend x precision), opened through :mod:`sr_deploy.runtime` only.

torch fp32 is the reference. A variant that cannot run here is kept with ``status="not available"``
and the reason (e.g. TensorRT on a machine without a GPU), so reports show it instead of hiding it.

Variants are planned first (names and precisions from the files' metadata, nothing loaded) and
opened one at a time (``with variant.opened() as up``), so a run holds at most one model, with its
ONNX Runtime arenas or CUDA buffers, in memory. Every variant is built by the runtime's own route
code (:func:`~sr_deploy.runtime.select.open_route`), so the bench measures what ``load`` gives users.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sr_deploy.backends.base import Upscaler
from sr_deploy.bench.config import BenchConfig
from sr_deploy.errors import BackendUnavailable
from sr_deploy.models.zoo import resolve_weights
from sr_deploy.runtime.load import load
from sr_deploy.runtime.select import Artifact, Route, identify, machine_facts, open_route

REFERENCE = "torch-fp32"
#: Why a bf16 variant is skipped on a CPU without native bf16 (``BenchConfig.emulated`` measures it anyway).
EMULATED = ("emulated: this CPU has no AVX-512 BF16 or AMX, so bf16 is emulated (about 10x slower than fp32 on "
            "an AVX2 CPU); not measured unless asked for (emulated = true)")


@dataclass
class Variant:
    """One backend x precision to measure.

    ``make`` loads its upscaler; :meth:`open` calls it and records ``load_s`` and ``device`` (or
    turns ``status`` into ``not available`` / ``failed`` with the reason); :meth:`close` frees it.
    """

    name: str
    backend: str
    precision: str
    source: str
    status: str = "ok"
    reason: str = ""
    load_s: float | None = None
    device: str | None = None
    make: Callable[[], Upscaler] | None = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """What a report prints in place of numbers for a variant that did not run."""
        return "ok" if self.available else f"{self.status}: {self.reason}"

    def row(self) -> dict[str, object]:
        return {"variant": self.name, "backend": self.backend, "precision": self.precision, "device": self.device,
                "source": self.source, "status": self.status, "reason": self.reason, "load_s": self.load_s}

    def open(self) -> Upscaler | None:
        """Load the upscaler (the caller closes it: ``with``), recording ``load_s`` and ``device``; None
        (with ``status`` ``not available`` or ``failed`` and the reason) when the variant cannot run here."""
        if not self.available or self.make is None:
            return None
        start = time.perf_counter()
        try:
            up = self.make()
        except (BackendUnavailable, ImportError) as exc:
            self.status, self.reason = "not available", str(exc)
            return None
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            return None
        self.load_s, self.device = time.perf_counter() - start, up.device
        return up

    @contextlib.contextmanager
    def opened(self) -> Iterator[Upscaler | None]:
        """:meth:`open` for a ``with`` block: the upscaler is closed (its sessions, arenas and device
        memory given back) when the block ends, before the next variant opens."""
        up = self.open()
        try:
            yield up
        finally:
            if up is not None:
                up.close()


def _torch_specs(config: BenchConfig) -> Iterator[tuple[str, Route]]:
    """``(name, route)`` of the torch variants for ``config.device``: the plain fp32 reference, then the
    production options that :func:`~sr_deploy.runtime.select.load` uses on this device."""
    device = config.device.split(":")[0]
    options = "channels_last+cudagraph" if device == "cuda" else "channels_last"
    yield REFERENCE, Route("torch", device, "fp32", "weights")
    for precision in ("fp32", "bf16", "fp16") if device == "cuda" else ("fp32", "bf16"):
        yield f"torch-{precision}+channels_last", Route("torch", device, precision, "weights", options)


def _file_variant(path: str, backend: str, device: str, precision: str | None = None) -> Variant:
    """An ONNX file or TensorRT engine, named ``{backend}-{precision}`` from its metadata (not loaded), run
    in ``precision`` (default: the file's own); ``failed`` with the reason when the metadata cannot be read."""
    try:
        stored = identify(path).precision or "?"
    except (ValueError, FileNotFoundError) as exc:
        return Variant(f"{backend}-?", backend, "?", path, "failed", f"{type(exc).__name__}: {exc}")
    wanted = precision or stored
    return Variant(f"{backend}-{wanted}", backend, wanted, path,
                   make=lambda: load(path, backend=backend, precision=wanted, device=device))


#: Why an ONNX backend has no variant when no ONNX file is given
NO_ONNX = ("no ONNX file given (export one with sr_deploy.export_onnx / export_fp16 / export_int8 or "
           "`sr-deploy export`, then give it as one of the onnx files)")


def _openvino_variants(config: BenchConfig) -> list[Variant]:
    """OpenVINO on every ONNX file, plus bf16 compute of each fp32 file (OpenVINO's own bf16); not
    available without OpenVINO, or without a native-bf16 CPU for bf16 (it would only be emulated)."""
    variants = []
    for path in map(str, config.onnx):
        variants.append(_file_variant(path, "openvino", "cpu"))
        if variants[-1].precision == "fp32" and "bf16" in config.precisions:
            variants.append(_file_variant(path, "openvino", "cpu", "bf16"))
    reason = machine_facts().openvino
    for v in variants:
        if v.available and reason is not None:
            v.status, v.reason = "not available", reason
        elif v.available and v.precision == "bf16" and not machine_facts().cpu_bf16:
            v.status, v.reason = "not available", EMULATED
    return variants


def plan_variants(config: BenchConfig) -> list[Variant]:
    """Every variant ``config`` asks for, not yet opened (see :meth:`Variant.open`), with unique names.

    The reference (torch fp32) is always first. Variants that cannot run here (TensorRT without a
    GPU, files without readable metadata) are already marked, with the reason.
    """
    weights = resolve_weights(config.model)
    if weights.suffix == ".onnx":
        raise ValueError(f"model {weights} is ONNX; the bench needs the PyTorch weights as the fp32 reference "
                         "(give the ONNX file as one of the onnx files)")
    variants: list[Variant] = []
    artifact = Artifact(weights, "weights")
    emulated = not config.device.startswith("cuda") and not machine_facts().cpu_bf16
    for name, route in _torch_specs(config):
        if name != REFERENCE and ("torch" not in config.backends or route.precision not in config.precisions):
            continue
        variant = Variant(name, "torch", route.precision, str(weights),
                          make=functools.partial(open_route, route, artifact, config.device))
        if emulated and route.precision == "bf16" and not config.emulated:
            variant.status, variant.reason = "not available", EMULATED
        variants.append(variant)
    files: list[Variant] = []
    for backend, runs in (("onnxruntime", ("fp32", "fp16", "int8")), ("openvino", ("fp32", "bf16", "fp16", "int8"))):
        if backend in config.backends and not config.onnx:  # asked for, so said, not silently left out
            files += [Variant(f"{backend}-{p}", backend, p, "", "not available", NO_ONNX) for p in runs]
    if "onnxruntime" in config.backends:
        files += [_file_variant(str(p), "onnxruntime", config.device) for p in config.onnx]
    if "openvino" in config.backends and not config.device.startswith("cuda"):
        files += _openvino_variants(config)
    if "tensorrt" in config.backends:
        files += _tensorrt_variants(config)
    variants += [v for v in files if v.precision in config.precisions or v.precision == "?"]
    unique_names(variants)
    return variants


def _tensorrt_variants(config: BenchConfig) -> list[Variant]:
    reason = machine_facts().tensorrt
    wanted = [p for p in config.precisions if p != "bf16"]
    if reason is not None:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available", reason) for p in wanted]
    if not config.engines:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available",
                        "no engine given (build one with sr_deploy.build_engine or `sr-deploy build`, then "
                        "give it as one of the engines)") for p in wanted]
    gpu = config.device if config.device.startswith("cuda") else "cuda"  # engines always run on a GPU
    return [_file_variant(str(p), "tensorrt", gpu) for p in config.engines]


def unique_names(variants: list[Variant]) -> None:
    """Make names unique: variants sharing a name (two ONNX files of one precision) are all told apart
    by their file, ``onnxruntime-int8 (model.int8-plain)``: the file's stem, or ``folder/stem`` when
    stems repeat too (``#2``, ``#3`` ... only for the same file given twice)."""
    base = [v.name for v in variants]
    for label in (lambda p: p.stem, lambda p: f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem):
        counts = Counter(v.name for v in variants)
        for v, name in zip(variants, base, strict=True):
            if counts[v.name] > 1:
                v.name = f"{name} ({label(Path(v.source))})"
    counts, seen = Counter(v.name for v in variants), Counter[str]()
    for v in variants:
        seen[v.name] += 1
        if counts[v.name] > 1 and seen[v.name] > 1:
            v.name = f"{v.name}#{seen[v.name]}"
