"""What a benchmark run measures: :class:`BenchConfig`, its ``--quick`` preset and suite files (TOML)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sr_deploy.vocabulary import BACKENDS, PRECISIONS


def parse_size(text: str) -> tuple[int, int]:
    """``"270x480"`` -> ``(270, 480)`` (input height x width in LR pixels); ValueError otherwise."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"image size must be HEIGHTxWIDTH in input pixels (e.g. 128x128), got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, every item one of ``allowed`` (ValueError naming ``what`` otherwise)."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise ValueError(f"unknown {what} {bad or text!r}; choose from {', '.join(allowed)}")
    return items


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark request.

    ``model``: shipped model name or weights file (the torch variants, and the fp32 reference).
    ``onnx`` / ``engines``: ONNX files (precision read from their metadata) and TensorRT engines.
    ``data``: HR image folders for accuracy (empty: the embedded evaluation photos).
    ``sizes``: latency input sizes ``(H, W)`` in LR pixels; ``batches``: batch sizes, batches > 1
    only where ``batch * H * W <= max_batch_pixels``. ``warmup`` / ``repeats`` / ``max_spread`` /
    ``max_attempts`` / ``budget_s``: see :func:`sr_deploy.bench.latency.measure`. ``max_images``:
    accuracy on at most this many images per folder (None: all). ``device``: ``cpu`` or ``cuda[:N]``.
    ``ort_threads``: ONNX Runtime intra-op threads recorded in the environment (0: ORT default).
    ``emulated``: also measure precisions this CPU only emulates (bf16 without AVX-512 BF16 or AMX;
    skipped by default: minutes of timing that say only "slower than fp32").
    ``tiling_sizes``: image sizes ``(H, W)`` (LR pixels) whose tiling overhead is measured per variant
    (:mod:`sr_deploy.bench.tiling`: tiled against whole-image time; empty: none), ``tiling_repeats`` timed
    runs each, for the variants named in ``tiling_variants`` (empty: every variant).
    """

    model: str
    onnx: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    backends: tuple[str, ...] = BACKENDS
    precisions: tuple[str, ...] = PRECISIONS
    sizes: tuple[tuple[int, int], ...] = ((128, 128), (256, 256), (270, 480))
    batches: tuple[int, ...] = (1, 4)
    max_batch_pixels: int = 4 * 128 * 128
    warmup: int = 3
    repeats: int = 20
    max_spread: float = 1.2
    max_attempts: int = 3
    budget_s: float | None = 60.0
    max_images: int | None = None
    device: str = "cpu"
    ort_threads: int = 0
    emulated: bool = False
    tiling_sizes: tuple[tuple[int, int], ...] = ((540, 960),)
    tiling_repeats: int = 3
    tiling_variants: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, allowed in (("backends", BACKENDS), ("precisions", PRECISIONS)):
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad:
                raise ValueError(f"unknown {name} {bad}; choose from {', '.join(allowed)}")
        if not self.sizes or not self.batches or min(self.batches) < 1:
            raise ValueError(f"need at least one size and batch sizes >= 1 (got {self.sizes}, {self.batches})")

    def shapes(self) -> list[tuple[int, int, int]]:
        """``(batch, H, W)`` latency points, small to large."""
        points = [(b, h, w) for h, w in self.sizes for b in sorted(set(self.batches))
                  if b == 1 or b * h * w <= self.max_batch_pixels]
        return sorted(points, key=lambda p: (p[1] * p[2], p[0]))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sizes"] = [f"{h}x{w}" for h, w in self.sizes]
        d["tiling_sizes"] = [f"{h}x{w}" for h, w in self.tiling_sizes]
        return d


#: ``--quick``: small sizes, few repeats, two images: a smoke run of every variant in seconds.
QUICK = {
    "sizes": ((32, 32), (64, 64)),
    "batches": (1, 2),
    "max_batch_pixels": 2 * 64 * 64,
    "warmup": 1,
    "repeats": 5,
    "max_attempts": 2,
    "budget_s": 5.0,
    "max_images": 2,
    "tiling_sizes": ((40, 72),),
    "tiling_repeats": 1,
}

_SUITE_KEYS = {f.name for f in dataclasses.fields(BenchConfig)} - {"model", "onnx", "engines", "extra"}


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a suite file: a TOML table ``[bench]`` whose keys are :class:`BenchConfig` fields (sizes as
    ``"HxW"`` strings). Relative ``data`` folders are taken relative to the current directory.
    Returns the keyword arguments; ValueError naming the file for unknown keys or bad values."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"suite file {p} does not exist")
    try:
        table = tomllib.loads(p.read_text()).get("bench")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p} is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{p} has no [bench] table")
    unknown = sorted(set(table) - _SUITE_KEYS)
    if unknown:
        raise ValueError(f"{p}: unknown [bench] keys {unknown}; known: {sorted(_SUITE_KEYS)}")
    kw: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("sizes", "tiling_sizes"):
            kw[key] = tuple(parse_size(s) for s in value)
        elif isinstance(value, list):
            kw[key] = tuple(value)
        else:
            kw[key] = value
    return kw


def make_config(
    model: str,
    suite: str | os.PathLike[str] | None = None,
    quick: bool = False,
    **overrides: Any,
) -> BenchConfig:
    """``BenchConfig(model)`` with, in increasing priority, the ``suite`` file, the :data:`QUICK`
    preset and the non-None ``overrides`` (command-line options)."""
    kw = bench_settings(suite, quick)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return BenchConfig(model=model, **kw)


def bench_settings(suite: str | os.PathLike[str] | None = None, quick: bool = False) -> dict[str, Any]:
    """The :class:`BenchConfig` keyword arguments of a ``suite`` file, then the :data:`QUICK` preset."""
    kw: dict[str, Any] = load_suite(suite) if suite else {}
    if quick:
        kw.update(QUICK)
    return kw
