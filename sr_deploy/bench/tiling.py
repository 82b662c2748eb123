"""Tiling overhead: the time of a tiled run against the same image run whole, on one upscaler.

Seam-free tiling computes every window's halo twice (each cut adds ``2 * halo`` input pixels along an
axis), so a tiled image costs more than the image run whole. For one image size and one memory budget
this measures both on the same upscaler, side by side: the plan the runtime would use
(:func:`~sr_deploy.runtime.tiling.plan_tiles`: window, number of windows, batch), the pixels it
computes per image pixel (``computed_ratio``; 1.0 is one window), the p50 of the tiled run
(:func:`~sr_deploy.runtime.tiling.upscale_tiled`, ``tiled_p50_ms``) and of one whole-image run
(``whole_p50_ms``), timed in turns so load changes weigh on both alike, and ``overhead_pct = 100 *
(tiled / whole - 1)``. The whole-image run is skipped
(``status`` says why) when the backend does not accept the shape or the memory model estimates it at
more than half the memory available now. Inputs are random pixels in [0, 1] (time does not depend on
content for these models).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import psutil

from sr_deploy.backends.base import Upscaler
from sr_deploy.bench.latency import summarize
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.runtime.tiling import TilePlan, bytes_per_pixel, default_memory_budget, plan_tiles, upscale_tiled

#: Budgets measured by default: the runtime's default (a share of available memory) and a fixed 1 GiB,
#: the old default whose 8 windows on a 540 x 960 image computed 1.75x its pixels.
BUDGETS: dict[str, int | None] = {"default": None, "1 GiB": 1 << 30}
WHOLE = "whole image"


def interleaved_p50_ms(runs: Mapping[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, float]:
    """Median wall-clock milliseconds of each callable in ``runs``, timed in turns (one call of each per
    round, ``repeats`` rounds after ``warmup`` untimed ones), so a change in machine load between rounds
    weighs on all of them alike and their ratios hold."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: summarize(ts)["p50_ms"] for name, ts in times.items()}


def computed_ratio(plan: TilePlan, height: int, width: int) -> float:
    """Input pixels computed by ``plan`` (every window, halos included) per image pixel."""
    return plan.count * plan.tile_h * plan.tile_w / (height * width)


def whole_image_fits(upscaler: Upscaler, height: int, width: int) -> str | None:
    """None when one ``height x width`` run is safe to time here, else why not."""
    if not upscaler.accepts((1, 3, height, width)):
        return f"not available: {upscaler.name} does not accept 1x3x{height}x{width}"
    desc = getattr(upscaler, "descriptor", None)
    if isinstance(desc, ModelDescriptor):
        need = bytes_per_pixel(desc, upscaler.precision) * height * width
        available = psutil.virtual_memory().available
        if need > available // 2:
            return (f"not measured: a whole-image run needs about {need / 2**30:.1f} GiB, over half the "
                    f"{available / 2**30:.1f} GiB available")
    return None


def tiling_rows(
    upscaler: Upscaler,
    size: tuple[int, int],
    budgets: dict[str, int | None] | None = None,
    warmup: int = 1,
    repeats: int = 3,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per memory budget (name -> bytes; None: the runtime's default) for a ``size = (H, W)``
    input (LR pixels): the plan, ``computed_ratio``, ``tiled_p50_ms``, ``whole_p50_ms`` and ``overhead_pct``
    (see the module doc). The whole image and every plan are timed in turns (:func:`interleaved_p50_ms`);
    the whole-image time is shared by the rows."""
    height, width = size
    image = np.random.default_rng(0).random((3, height, width), dtype=np.float32)
    skip = whole_image_fits(upscaler, height, width)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Callable[[], object]] = {}
    plans: dict[str, TilePlan] = {}
    for name, budget in (budgets or BUDGETS).items():
        nbytes = default_memory_budget() if budget is None else budget
        row: dict[str, Any] = {"height": height, "width": width, "budget": name, "budget_gib": nbytes / 2**30}
        try:
            plans[name] = plan_tiles(upscaler, height, width, memory_budget=nbytes)
        except ValueError as exc:
            row["status"] = f"not available: {exc}"
        rows.append(row)
    for name, plan in plans.items():
        runs[name] = partial(upscale_tiled, upscaler, image, plan)
    if skip is None:
        runs[WHOLE] = partial(upscaler.run, image[None])
    p50 = interleaved_p50_ms(runs, warmup, repeats)
    whole = p50.get(WHOLE)
    for row in rows:
        if row["budget"] not in plans:
            continue
        plan, tiled = plans[row["budget"]], p50[row["budget"]]
        row.update(tile=f"{plan.tile_h}x{plan.tile_w}", windows=plan.count, batch=plan.batch,
                   computed_ratio=computed_ratio(plan, height, width), tiled_p50_ms=tiled, whole_p50_ms=whole,
                   overhead_pct=None if whole is None else 100.0 * (tiled / whole - 1.0), status=skip or "ok")
        if log:
            log(f"tiling {upscaler.name} {height}x{width}, {row['budget']} budget: {plan.count} window(s) of "
                f"{plan.tile_h}x{plan.tile_w}, {row['computed_ratio']:.2f}x the pixels, tiled {tiled:.0f} ms"
                + ("" if whole is None else f", whole {whole:.0f} ms ({row['overhead_pct']:+.1f} %)"))
    return rows
