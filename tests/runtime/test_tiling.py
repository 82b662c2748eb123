"""Tiled inference equals whole-image inference, within budgets and backend limits, from many threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sr_deploy.backends.base import ShapeLimits
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.models import ModelDescriptor
from sr_deploy.runtime.tiling import (
    TiledUpscaler,
    TilePlan,
    axis_spans,
    bytes_per_pixel,
    default_memory_budget,
    plan_tiles,
    upscale_tiled,
)
from tests.helpers import SMALL, random_srresnet


@pytest.fixture(scope="module")
def upscaler() -> TorchUpscaler:
    return TorchUpscaler(random_srresnet(), SMALL)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, h, w), dtype=np.float32)


@pytest.mark.parametrize(("length", "tile", "halo"), [(1, 5, 2), (10, 10, 3), (11, 10, 3), (100, 31, 12),
                                                      (97, 25, 12), (50, 7, 3), (64, 64, 0), (65, 9, 0)])
def test_axis_spans_partition_with_a_full_halo_inside_every_window(length: int, tile: int, halo: int) -> None:
    spans = axis_spans(length, tile, halo)
    assert spans[0].keep_start == 0 and spans[-1].keep_stop == length
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.keep_stop == b.keep_start  # cores tile the axis with no gap and no overlap
    for s in spans:
        assert s.stop - s.start == min(tile, length)  # one window shape for every tile
        assert 0 <= s.start <= s.keep_start < s.keep_stop <= s.stop <= length
        assert s.start == 0 or s.keep_start - s.start >= halo
        assert s.stop == length or s.stop - s.keep_stop >= halo


def test_axis_spans_need_a_core() -> None:
    with pytest.raises(ValueError, match="twice the receptive-field halo"):
        axis_spans(100, 24, 12)


@pytest.mark.parametrize(("h", "w"), [(37, 53), (61, 29), (45, 45)])
@pytest.mark.parametrize("tile", [3, 8, 17])
def test_tiled_equals_whole_image_fp32(upscaler: TorchUpscaler, h: int, w: int, tile: int) -> None:
    x = image(h, w, seed=h * w)
    whole = upscaler.run(x[None])[0]
    plan = plan_tiles(upscaler, h, w, tile=tile)
    assert plan.count > 1 and plan.halo == SMALL.receptive_radius == 12
    tiled = upscale_tiled(upscaler, x, plan)
    assert tiled.shape == (3, 4 * h, 4 * w)
    assert np.abs(tiled - whole).max() <= 1e-5
    assert np.abs(whole).max() > 0.1  # the model is not trivially near zero


def test_a_halo_below_the_receptive_radius_leaves_seams(upscaler: TorchUpscaler) -> None:
    x = image(40, 40, seed=1)
    whole = upscaler.run(x[None])[0]
    short = plan_tiles(upscaler, 40, 40, tile=8, halo=SMALL.receptive_radius - 4)
    assert np.abs(upscale_tiled(upscaler, x, short) - whole).max() > 1e-4  # far above the 1e-5 float noise


def computed_pixels(plan: TilePlan) -> int:
    return plan.count * plan.tile_h * plan.tile_w


def test_memory_budget_chooses_the_window_and_batches_tiles(upscaler: TorchUpscaler) -> None:
    per_pixel = bytes_per_pixel(SMALL, "fp32")
    assert per_pixel == 4 * 16 * (2 * 16 + 4) + 4 * 3 * 17
    budget = per_pixel * 30 * 30 * 3  # 2700 pixels: three 30 x 30 windows
    plan = plan_tiles(upscaler, 70, 90, memory_budget=budget)
    assert plan.tile_h * plan.tile_w <= 2700 and plan.batch == 1
    # the fewest pixels computed among the windows that fit; the square 51 x 51 window computes 15 % more here
    square = plan_tiles(upscaler, 70, 90, tile=51 - 2 * plan.halo, memory_budget=budget)
    assert (plan.tile_h, plan.tile_w) == (48, 47) and computed_pixels(plan) == 13536 < computed_pixels(square) == 15606
    wide = plan_tiles(upscaler, 20, 90, memory_budget=per_pixel * 26 * 26 * 3)  # 2028 pixels: the whole image fits
    assert (wide.tile_h, wide.tile_w, wide.batch, wide.count) == (20, 90, 1, 1)
    strips = plan_tiles(upscaler, 20, 90, memory_budget=per_pixel * 1200)  # 1200 pixels: strips of the full height
    assert (strips.tile_h, strips.tile_w, strips.count, strips.batch) == (20, 47, 3, 1)
    for p, x in ((plan, image(70, 90, seed=1)), (strips, image(20, 90, seed=2))):
        np.testing.assert_allclose(upscale_tiled(upscaler, x, p), upscaler.run(x[None])[0], rtol=0, atol=1e-5)
    assert plan_tiles(upscaler, 20, 30).count == 1  # fits the default budget: one whole-image window
    with pytest.raises(ValueError, match="memory budget"):
        plan_tiles(upscaler, 70, 90, memory_budget=per_pixel * 20 * 20)


def test_explicit_tiles_are_batched_within_the_budget(upscaler: TorchUpscaler) -> None:
    per_pixel = bytes_per_pixel(SMALL, "fp32")
    tiny = plan_tiles(upscaler, 200, 300, tile=1, memory_budget=per_pixel * 25 * 25 * 10)
    assert tiny.count > 100 and tiny.batch == 10  # smaller tiles never mean more memory
    assert plan_tiles(upscaler, 200, 300, tile=1, memory_budget=per_pixel * 100).batch == 1


def test_default_budget_is_a_share_of_available_memory() -> None:
    assert 1 << 30 <= default_memory_budget() <= 16 << 30


def test_backend_limits_cap_windows_and_batches() -> None:
    limited = TorchUpscaler(random_srresnet(), SMALL)
    limited.limits = ShapeLimits(max_batch=2, min_side=16, max_height=40, max_width=32)
    x = image(83, 71, seed=3)
    plan = plan_tiles(limited, 83, 71, tile=0)
    assert (plan.tile_h, plan.tile_w, plan.batch) == (40, 32, 2)
    with pytest.raises(ValueError, match="outside the accepted"):
        limited.run(x[None])
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x[None])[0]
    assert np.abs(upscale_tiled(limited, x, plan) - reference).max() <= 1e-5
    with pytest.raises(ValueError, match="does not accept"):
        plan_tiles(limited, 10, 71)  # below min_side


def test_plan_must_match_the_image(upscaler: TorchUpscaler) -> None:
    plan = plan_tiles(upscaler, 30, 30, tile=4)
    with pytest.raises(ValueError, match="covers 30 x 30"):
        upscale_tiled(upscaler, image(31, 30), plan)
    with pytest.raises(ValueError, match="3 x H x W"):
        upscale_tiled(upscaler, image(30, 30)[:1], plan)
    with pytest.raises(ValueError, match="pass halo"):
        plan_tiles(_NoDesc(), 10, 10)  # type: ignore[arg-type]


class _NoDesc:
    name, precision, limits = "no-descriptor", "fp32", ShapeLimits()


def test_concurrent_threads_give_the_sequential_outputs(upscaler: TorchUpscaler) -> None:
    sizes = [(37, 41), (50, 23), (29, 60), (44, 44), (31, 33), (58, 27)]
    inputs = [image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    plans = [plan_tiles(upscaler, h, w, tile=7) for h, w in sizes]
    sequential = [upscale_tiled(upscaler, x, p) for x, p in zip(inputs, plans, strict=True)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(2):
            concurrent = list(pool.map(lambda xp: upscale_tiled(upscaler, *xp), zip(inputs, plans, strict=True)))
            for seq, con in zip(sequential, concurrent, strict=True):
                np.testing.assert_array_equal(con, seq)


def test_other_scales() -> None:
    desc = ModelDescriptor(scale=2, num_features=8, num_blocks=1)
    up = TorchUpscaler(random_srresnet(desc, seed=5), desc)
    x = image(33, 27, seed=4)
    tiled = upscale_tiled(up, x, plan_tiles(up, 33, 27, tile=6))
    assert tiled.shape == (3, 66, 54)
    assert np.abs(tiled - up.run(x[None])[0]).max() <= 1e-5


def test_tiled_upscaler_runs_any_size_within_the_budget_as_the_model_does() -> None:
    inner = TorchUpscaler(random_srresnet(), SMALL)
    budget = bytes_per_pixel(SMALL, "fp32") * 45 * 45  # windows of at most 2025 pixels: two per image
    tiled = TiledUpscaler(inner, memory_budget=budget)
    batch = np.stack([image(37, 70, seed=1), image(37, 70, seed=2)])
    assert plan_tiles(inner, 37, 70, memory_budget=budget).count > 1
    out = tiled.run(batch)
    np.testing.assert_allclose(out, inner.run(batch), rtol=0, atol=1e-5)
    assert tiled.scale == 4 and tiled.descriptor is inner.descriptor and tiled.name.endswith("+tiled")
    assert tiled.accepts((1, 3, 5000, 5000))  # any size: the windows are what the model sees
    with tiled:
        pass
    with pytest.raises(RuntimeError, match="is closed"):  # closing the wrapper closes the model
        inner.run(batch)
