"""Measured selection: time the routes that can run a model on this machine, once, and remember the winner.

The static ranking (:data:`~sr_deploy.runtime.select.RANKING`) was measured on one CPU; on another
(AVX2 only, AMX, a GPU) the order differs. :func:`tune` opens every usable route of the request
(weights may run as ONNX made on first use, :mod:`sr_deploy.runtime.convert`), runs each on the input
shape it will see (a tile), a short warm-up and then repeated runs within ``budget_s`` seconds, and
keeps the median. The table and the choice are cached in ``<cache>/tuning.json`` under a key made
of the model file's sha256, the request (precision, device), the shape and the machine (CPU model
and instruction-set class, GPUs, the versions of torch, ONNX Runtime, OpenVINO and TensorRT), so it
is measured once per model, shape and machine; any change in a key part measures again. A cache
file that cannot be read is ignored and rewritten. The same holds for accuracy: :func:`measure_drop`
measures a reduced-precision route's Y-PSNR drop against fp32 here, once (``<cache>/drops.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sr_deploy.artifacts import atomic_write_json, library_versions, locked, sha256_file
from sr_deploy.backends.base import Upscaler
from sr_deploy.errors import BackendUnavailable
from sr_deploy.export.sensitivity import validation_pairs
from sr_deploy.hardware import this_cpu
from sr_deploy.runtime.convert import cache_root, convert_int8
from sr_deploy.runtime.select import (
    AUTO,
    RANKING,
    Route,
    decide,
    identify,
    int8_made_on_demand,
    machine_facts,
    open_route,
)
from sr_deploy.runtime.tiling import upscale_tiled
from sr_deploy.scoring import mean_y_psnr, upscale_pair

#: Libraries whose version changes a timing.
TIMED_LIBRARIES = ("torch", "onnxruntime", "openvino", "tensorrt")
DEFAULT_SHAPE = (1, 3, 128, 128)


@dataclass(frozen=True)
class RouteTiming:
    """One route on this machine: median milliseconds per run of ``shape`` (None when it failed, then
    ``status`` says why), how many timed runs, and the route's key fields."""

    label: str
    backend: str
    device: str
    precision: str
    variant: str
    artifact: str
    p50_ms: float | None
    runs: int
    status: str = "ok"


@dataclass(frozen=True)
class Tuning:
    """The measured table (fastest first, failures last), the winning route and whether it came from the cache."""

    key: str
    shape: tuple[int, int, int, int]
    timings: tuple[RouteTiming, ...]
    from_cache: bool

    @property
    def best(self) -> RouteTiming:
        ok = [t for t in self.timings if t.p50_ms is not None]
        if not ok:
            raise BackendUnavailable("no route ran: " + "; ".join(f"{t.label}: {t.status}" for t in self.timings))
        return ok[0]

    def route(self) -> Route:
        """The :class:`Route` of :attr:`best`."""
        best = self.best  # raises when no route ran
        return next(r for t, r in self.ranked() if t is best)

    def ranked(self) -> list[tuple[RouteTiming, Route]]:
        """The routes that ran, fastest first, each with its timing."""
        return [(t, next(r for r in RANKING if (r.backend, r.device, r.precision, r.variant, r.artifact) ==
                         (t.backend, t.device, t.precision, t.variant, t.artifact)))
                for t in self.timings if t.p50_ms is not None]

    def summary(self) -> str:
        """``openvino fp32 on cpu (CPU) 412 ms; torch ... `` and the choice, one line."""
        rows = "; ".join(f"{t.label} {t.p50_ms:.1f} ms" if t.p50_ms is not None else f"{t.label} {t.status}"
                         for t in self.timings)
        source = "cached measurement" if self.from_cache else "measured now"
        return f"{self.best.label} (fastest; {source} at {'x'.join(map(str, self.shape))}: {rows})"


def machine_key() -> dict[str, Any]:
    """What a timing depends on besides the model and the shape."""
    import torch

    cpu = this_cpu()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    versions = library_versions()
    return {"cpu": cpu.model, "isa": cpu.isa, "gpus": gpus,
            "libraries": {name: versions.get(name) for name in TIMED_LIBRARIES}}


def _runner(up: Upscaler, shape: tuple[int, int, int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """``up.run``, or, for a model whose size rules the shape breaks (a fixed-shape export, a size multiple),
    the same images through the tiler (padded and cut into the windows the model takes), as upscaling runs them."""
    desc = up.descriptor
    if desc.fixed_size is None and desc.fit_size(shape[2], shape[3]) == (shape[2], shape[3]):
        return up.run
    return lambda batch: np.stack([upscale_tiled(up, image) for image in batch])


def check_shape(shape: tuple[int, ...], name: str = "shape") -> None:
    """ValueError naming ``name`` unless ``shape`` is an ``N x 3 x H x W`` input shape of positive integers."""
    if (not isinstance(shape, tuple | list) or len(shape) != 4 or not all(isinstance(v, int) and v > 0 for v in shape)
            or shape[1] != 3):
        raise ValueError(f"{name} must be an (N, 3, H, W) input shape of positive integers, got {shape!r}")


def tuning_key(model_sha256: str, precision: str | None, device: str | None, shape: tuple[int, ...],
               machine: dict[str, Any], backend: str = AUTO) -> str:
    """sha256 of every part a measurement depends on (any change measures again)."""
    payload = {"model": model_sha256, "precision": precision, "device": device, "shape": list(shape),
               "machine": machine, "backend": backend}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; an unreadable or malformed file counts as empty (it is rewritten on the next save)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def save_entry(cache: Path, key: str, entry: Any) -> None:
    """Add ``entry`` under ``key`` to the cache file, merged under a lock into what is on disk then (processes
    that tune at once, the actors of a cluster job on one node, keep each other's entries), written atomically."""
    with locked(cache):
        entries = read_cache(cache)
        entries[key] = entry
        atomic_write_json(cache, entries)


def time_route(up_run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, budget_s: float) -> tuple[float, int]:
    """(median ms, runs) of ``up_run(batch)``: one untimed warm-up, then at least 2 and at most 20 timed
    runs while the budget lasts."""
    up_run(batch)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 2 or (len(times) < 20 and time.perf_counter() < deadline):
        start = time.perf_counter()
        up_run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), len(times)


def tune(
    model: str | os.PathLike[str],
    *,
    precision: str | None = None,
    device: str | None = None,
    shape: tuple[int, int, int, int] = DEFAULT_SHAPE,
    budget_s: float = 2.0,
    refresh: bool = False,
    log: Callable[[str], None] | None = None,
    backend: str = AUTO,
) -> Tuning:
    """Time every route of ``backend`` (``auto``: every backend) that can run ``model`` in ``precision`` here
    (from the cache when measured before, unless ``refresh``) on an input of ``shape`` (NCHW), at most about
    ``budget_s`` seconds per route. ``int8`` of weights or an fp32 ONNX times the int8 file ``load`` makes from it
    on first use for ``backend`` (:func:`~sr_deploy.runtime.convert.convert_int8`, every layer int8 under the
    export's plain limit; made now if it is not cached) on the CPU int8 routes."""
    check_shape(shape)
    if budget_s < 0:
        raise ValueError(f"budget_s must be >= 0 seconds, got {budget_s}")
    artifact = identify(model)
    if int8_made_on_demand(artifact, precision, device, backend):
        artifact = identify(convert_int8(artifact.path, None, log, backend))
    machine = machine_key()
    key = tuning_key(sha256_file(artifact.path), precision, device, shape, machine, backend)
    cache = cache_root() / "tuning.json"
    entries = read_cache(cache)
    entry = entries.get(key)
    if not refresh and isinstance(entry, dict):
        try:
            timings = tuple(RouteTiming(**t) for t in entry["timings"])
            return Tuning(key, shape, timings, from_cache=True)
        except (KeyError, TypeError):
            pass  # a malformed entry is measured again
    selection = decide(artifact, machine_facts(), backend, precision, device, convert=artifact.kind == "weights")
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    measured = []
    for route in selection.candidates:
        base = RouteTiming(route.label, route.backend, route.device, route.precision, route.variant, route.artifact,
                           None, 0)
        try:
            with open_route(route, artifact, device, log) as up:
                p50, runs = time_route(_runner(up, shape), batch, budget_s)
            measured.append(RouteTiming(**{**asdict(base), "p50_ms": p50, "runs": runs}))
        except (BackendUnavailable, ValueError, RuntimeError, MemoryError) as exc:
            measured.append(RouteTiming(**{**asdict(base), "status": f"failed: {type(exc).__name__}: {exc}"}))
        if log:
            last = measured[-1]
            log(f"tune {last.label}: " + (f"{last.p50_ms:.1f} ms" if last.p50_ms is not None else last.status))
    timings = tuple(sorted(measured, key=lambda t: (t.p50_ms is None, t.p50_ms or 0.0)))
    save_entry(cache, key, {"model": str(artifact.path), "shape": list(shape), "precision": precision,
                            "device": device, "backend": backend, "machine": machine,
                            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "timings": [asdict(t) for t in timings]})
    return Tuning(key, shape, timings, from_cache=False)


def measure_drop(
    model: str | os.PathLike[str], route: Route, device: str | None = None, log: Callable[[str], None] | None = None
) -> float:
    """Y-PSNR drop (dB) of ``route`` against fp32 (torch on ``model``'s weights; ONNX Runtime on the CPU for an
    fp32 ONNX file, whose export was parity-checked against torch), on the validation crops of the embedded
    evaluation photos, measured on this machine once (cached like timings)."""
    artifact = identify(model)
    reference = Route("torch", (device or "cpu").split(":")[0], "fp32", "weights") if artifact.kind == "weights" \
        else next(r for r in RANKING if (r.backend, r.device, r.precision) == ("onnxruntime", "cpu", "fp32"))
    key = tuning_key(sha256_file(artifact.path), f"drop:{route.label}", device, (), machine_key())
    cache = cache_root() / "drops.json"
    entries = read_cache(cache)
    if isinstance(entries.get(key), float):
        return float(entries[key])
    with open_route(reference, artifact, device, log) as ref:
        pairs = validation_pairs(None, ref.scale)
        baseline = mean_y_psnr([upscale_pair(ref, p) for p in pairs], pairs, ref.scale)
    with open_route(route, artifact, device, log) as up:
        drop = baseline - mean_y_psnr([upscale_pair(up, p) for p in pairs], pairs, up.scale)
    if log:
        log(f"{route.label}: Y-PSNR drop {drop:.3f} dB against fp32 on {len(pairs)} validation crops")
    save_entry(cache, key, drop)
    return drop
