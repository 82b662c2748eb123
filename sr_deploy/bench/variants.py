"""The variants a benchmark compares (backend x precision), opened through :mod:`sr_deploy.runtime` only.

torch fp32 is the reference. A variant that cannot run here is kept with ``status="not available"``
and the reason (e.g. TensorRT on a machine without a GPU), so reports show it instead of hiding it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sr_deploy.bench.config import BenchConfig
from sr_deploy.runtime.base import BackendUnavailable, Upscaler

REFERENCE = "torch-fp32"


@dataclass
class Variant:
    """One backend x precision to measure. ``upscaler`` is set when ``status == "ok"``."""

    name: str
    backend: str
    precision: str
    source: str
    status: str = "ok"
    reason: str = ""
    load_s: float | None = None
    upscaler: Upscaler | None = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """What a report prints in place of numbers for a variant that did not run."""
        return "ok" if self.available else f"{self.status}: {self.reason}"

    def row(self) -> dict[str, object]:
        device = self.upscaler.device if self.upscaler is not None else None
        return {"variant": self.name, "backend": self.backend, "precision": self.precision, "device": device,
                "source": self.source, "status": self.status, "reason": self.reason, "load_s": self.load_s}


def _torch_specs(config: BenchConfig) -> Iterator[tuple[str, str, bool]]:
    """``(name, precision, channels_last)`` of the torch variants for ``config.device``."""
    yield REFERENCE, "fp32", False
    yield "torch-fp32+channels_last", "fp32", True
    yield "torch-bf16+channels_last", "bf16", True
    if config.device.startswith("cuda"):
        yield "torch-fp16+channels_last", "fp16", True


def _open(variant: Variant, make: object) -> Variant:
    start = time.perf_counter()
    try:
        variant.upscaler = make()  # type: ignore[operator]
    except (BackendUnavailable, ImportError) as exc:
        variant.status, variant.reason = "not available", str(exc)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        variant.status, variant.reason = "failed", f"{type(exc).__name__}: {exc}"
    else:
        variant.load_s = time.perf_counter() - start
    return variant


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT engines cannot run here (None when they can)."""
    from sr_deploy.hardware import require_tensorrt

    try:
        require_tensorrt()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def open_variants(config: BenchConfig) -> list[Variant]:
    """Every variant ``config`` asks for, opened (or marked not available / failed with the reason).

    The reference (torch fp32) is always first and must open: its failure raises.
    """
    from sr_deploy.models.weights import load_weights
    from sr_deploy.models.zoo import resolve_weights
    from sr_deploy.runtime import load
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

        variants.append(_open(Variant(name, "torch", precision, str(weights)), make))
    if not variants[0].available:
        raise ValueError(f"the torch fp32 reference for {weights} cannot run: {variants[0].reason}")
    if "onnxruntime" in config.backends:
        for path in config.onnx:
            v = _open(Variant(f"onnxruntime:{path}", "onnxruntime", "?", str(path)),
                      lambda p=path: load(p, backend="onnxruntime", device=config.device))
            _name_after_upscaler(v, "onnxruntime")
            if v.precision in config.precisions or v.precision == "?":
                variants.append(v)
    if "tensorrt" in config.backends:
        variants.extend(_tensorrt_variants(config))
    return variants


def _name_after_upscaler(v: Variant, backend: str) -> None:
    if v.upscaler is not None:
        v.precision = v.upscaler.precision
        v.name = f"{backend}-{v.precision}"


def _tensorrt_variants(config: BenchConfig) -> list[Variant]:
    from sr_deploy.runtime import load

    reason = tensorrt_unavailable_reason()
    wanted = [p for p in config.precisions if p != "bf16"]
    if reason is not None:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available", reason) for p in wanted]
    if not config.engines:
        return [Variant(f"tensorrt-{p}", "tensorrt", p, "", "not available",
                        "no engine given (build one with `sr-deploy build` or `sr-deploy pipeline --targets "
                        "tensorrt`, then pass --engine)") for p in wanted]
    gpu = config.device if config.device.startswith("cuda") else "cuda"  # engines always run on a GPU
    out = []
    for path in config.engines:
        v = _open(Variant(f"tensorrt:{path}", "tensorrt", "?", str(path)),
                  lambda p=path: load(p, backend="tensorrt", device=gpu))
        _name_after_upscaler(v, "tensorrt")
        if v.precision in config.precisions or v.precision == "?":
            out.append(v)
    return out


def unique_names(variants: list[Variant]) -> None:
    """Suffix repeated variant names (two ONNX files of one precision) with ``#2``, ``#3`` ..."""
    seen: dict[str, int] = {}
    for v in variants:
        seen[v.name] = seen.get(v.name, 0) + 1
        if seen[v.name] > 1:
            v.name = f"{v.name}#{seen[v.name]}"
