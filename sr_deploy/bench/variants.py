"""The variants a benchmark compares (backend x precision), opened through :mod:`sr_deploy.runtime` only.

torch fp32 is the reference. A variant that cannot run here is kept with ``status="not available"``
and the reason (e.g. TensorRT on a machine without a GPU), so reports show it instead of hiding it.

Variants are planned first (names and precisions from the files' metadata, nothing loaded) and
opened one at a time (:meth:`Variant.open` / :meth:`Variant.close`), so a run holds at most one
model, with its ONNX Runtime arenas or CUDA buffers, in memory.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sr_deploy.bench.config import BenchConfig
from sr_deploy.runtime.base import BackendUnavailable, Upscaler

REFERENCE = "torch-fp32"


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
    upscaler: Upscaler | None = field(default=None, repr=False)

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
        """The loaded upscaler (loaded now if needed), or None when the variant cannot run here."""
        if self.upscaler is not None or not self.available or self.make is None:
            return self.upscaler
        start = time.perf_counter()
        try:
            up = self.make()
        except (BackendUnavailable, ImportError) as exc:
            self.status, self.reason = "not available", str(exc)
            return None
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            return None
        self.load_s, self.device, self.upscaler = time.perf_counter() - start, up.device, up
        return up

    def close(self) -> None:
        """Drop the upscaler and collect garbage, so its memory (weights, ONNX Runtime arenas, CUDA
        buffers, torch's cached CUDA blocks) is given back before the next variant opens. Callers
        must not keep their own reference to the upscaler."""
        if self.upscaler is None:
            return
        self.upscaler = None
        gc.collect()
        if self.backend == "torch" and self.device is not None and self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _torch_specs(config: BenchConfig) -> Iterator[tuple[str, str, bool]]:
    """``(name, precision, channels_last)`` of the torch variants for ``config.device``."""
    yield REFERENCE, "fp32", False
    yield "torch-fp32+channels_last", "fp32", True
    yield "torch-bf16+channels_last", "bf16", True
    if config.device.startswith("cuda"):
        yield "torch-fp16+channels_last", "fp16", True


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT engines cannot run here (None when they can)."""
    from sr_deploy.hardware import require_tensorrt

    try:
        require_tensorrt()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def _file_variant(path: str, backend: str, device: str) -> Variant:
    """An ONNX file or TensorRT engine, named ``{backend}-{precision}`` from its metadata (not loaded);
    ``failed`` with the reason when the metadata cannot be read."""
    from sr_deploy.runtime import load
    from sr_deploy.runtime.select import identify

    try:
        precision = identify(path).precision or "?"
    except (ValueError, FileNotFoundError) as exc:
        return Variant(f"{backend}-?", backend, "?", path, "failed", f"{type(exc).__name__}: {exc}")
    return Variant(f"{backend}-{precision}", backend, precision, path,
                   make=lambda: load(path, backend=backend, device=device))


def plan_variants(config: BenchConfig) -> list[Variant]:
    """Every variant ``config`` asks for, not yet opened (see :meth:`Variant.open`), with unique names.

    The reference (torch fp32) is always first. Variants that cannot run here (TensorRT without a
    GPU, files without readable metadata) are already marked, with the reason.
    """
    from sr_deploy.models.weights import load_weights
    from sr_deploy.models.zoo import resolve_weights
    from sr_deploy.runtime.torch_backend import TorchUpscaler

    weights = resolve_weights(config.model)
    if weights.suffix == ".onnx":
        raise ValueError(f"--model {weights} is ONNX; bench needs the PyTorch weights as the fp32 reference "
                         "(pass the ONNX file with --onnx)")
    variants: list[Variant] = []
    for name, precision, channels_last in _torch_specs(config):
        if name != REFERENCE and ("torch" not in config.backends or precision not in config.precisions):
            continue

        def make(p: str = precision, cl: bool = channels_last, n: str = name) -> Upscaler:
            net, desc = load_weights(weights, config.device)
            return TorchUpscaler(net, desc, device=config.device, precision=p, channels_last=cl, name=n)

        variants.append(Variant(name, "torch", precision, str(weights), make=make))
    files: list[Variant] = []
    if "onnxruntime" in config.backends:
        files += [_file_variant(str(p), "onnxruntime", config.device) for p in config.onnx]
    if "tensorrt" in config.backends:
        files += _tensorrt_variants(config)
    variants += [v for v in files if v.precision in config.precisions or v.precision == "?"]
    unique_names(variants)
    return variants


def _tensorrt_variants(config: BenchConfig) -> list[Variant]:
    reason = tensorrt_unavailable_reason()
    wanted = [p for p in config.precisions if p != "bf16"]
    if reason is not None:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available", reason) for p in wanted]
    if not config.engines:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available",
                        "no engine given (build one with `sr-deploy build` or `sr-deploy pipeline --targets "
                        "tensorrt`, then pass --engine)") for p in wanted]
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
