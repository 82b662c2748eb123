"""The measured cut both accuracy budgets share (int8 and fp16): ranking, prediction, binary search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sr_deploy.data.datasets import EvalPair
from sr_deploy.export.sensitivity import measured_cut
from sr_deploy.scoring import mean_y_psnr

SCALE = 2


def _setup() -> tuple[list[EvalPair], list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Three pairs, fp32-like outputs near their HR, and one independent error pattern per candidate,
    each of a different strength (what that candidate adds in low precision)."""
    rng = np.random.default_rng(0)
    hr = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(3)]
    pairs = [EvalPair(f"p{i}", h, h[::SCALE, ::SCALE]) for i, h in enumerate(hr)]
    reference = [np.clip(h / 255.0 + rng.normal(0, 0.01, h.shape), 0, 1).astype(np.float32) for h in hr]
    strength = {"a": 0.001, "b": 0.004, "c": 0.002, "d": 0.008, "e": 0.003, "f": 0.016}
    noise = {n: [rng.normal(0, s, h.shape).astype(np.float32) for h in hr] for n, s in strength.items()}
    return pairs, reference, noise


def test_cut_is_the_largest_measured_within_budget_in_order_of_error_per_cost() -> None:
    pairs, reference, noise = _setup()
    calls: list[tuple[str, ...]] = []

    def outputs(left_out: Sequence[str]) -> list[np.ndarray]:
        calls.append(tuple(left_out))
        low = [n for n in noise if n not in left_out]
        return [np.clip(r + sum((noise[n][i] for n in low), np.zeros_like(r)), 0, 1) for i, r in enumerate(reference)]

    baseline = mean_y_psnr(reference, pairs, SCALE)
    all_low = baseline - mean_y_psnr(outputs([]), pairs, SCALE)
    budget = all_low / 3
    candidates = list(noise)
    notes: list[str] = []
    cut = measured_cut(candidates, outputs, reference, pairs, SCALE, budget, "nodes low", notes.append)
    # ranked by error alone: the strongest patterns stay out, most error first
    assert list(cut.noise) == candidates and sorted(cut.noise, key=cut.noise.__getitem__) == list("acebdf")
    assert cut.left_out == sorted(cut.left_out, key=cut.noise.__getitem__, reverse=True)
    k = len(candidates) - len(cut.left_out)
    order = sorted(candidates, key=cut.noise.__getitem__)
    assert cut.left_out == order[k:][::-1]
    brute = [baseline - mean_y_psnr(outputs(order[j:]), pairs, SCALE) for j in range(len(order) + 1)]
    assert k == max(j for j, drop in enumerate(brute) if drop <= budget)  # the largest within budget
    assert 0 < k < len(candidates) and cut.final_psnr == baseline - cut.cuts[k]
    assert all(cut.cuts[j] == brute[j] for j in cut.cuts)  # every probe recorded with its measured drop
    # one call per candidate alone, then the probes only (the all-low count is the caller's)
    assert len(calls) - len(brute) - 1 == len(candidates) + len(cut.cuts)
    assert cut.sensitivity["f"] > cut.sensitivity["a"] > 0 and 0 < cut.predicted_drop <= budget
    assert any(note.endswith(" dB") and " nodes low: drop " in note for note in notes)
    # a cost per candidate ranks by error per unit of cost: "d", costly, goes low before "b" with less error
    cost = {n: 100.0 if n == "d" else 1.0 for n in candidates}
    by_cost = measured_cut(candidates, outputs, reference, pairs, SCALE, budget, "layers", notes.append, cost)
    ranked = sorted(candidates, key=lambda n: by_cost.noise[n] / cost[n])
    assert by_cost.left_out == ranked[len(candidates) - len(by_cost.left_out):][::-1]
    assert "d" not in by_cost.left_out and "b" in by_cost.left_out and "d" in cut.left_out
