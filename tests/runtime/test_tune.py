"""Measured selection: the probe over every usable route, its cache (keys, reuse, invalidation, corruption)."""

from __future__ import annotations

import json
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from sr_deploy.runtime.convert import converted_path
from sr_deploy.runtime.select import RANKING
from sr_deploy.runtime.tune import machine_key, read_cache, save_entry, tune, tuning_key

SHAPE = (1, 3, 12, 12)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tuning.json"


def test_key_changes_with_every_part() -> None:
    machine = machine_key()
    assert set(machine) == {"cpu", "isa", "gpus", "libraries"} and "torch" in machine["libraries"]
    base = tuning_key("abc", None, None, SHAPE, machine)
    assert base == tuning_key("abc", None, None, SHAPE, dict(machine))
    changed = [
        tuning_key("abd", None, None, SHAPE, machine),
        tuning_key("abc", "bf16", None, SHAPE, machine),
        tuning_key("abc", None, "cpu", SHAPE, machine),
        tuning_key("abc", None, None, (1, 3, 12, 13), machine),
        tuning_key("abc", None, None, SHAPE, {**machine, "isa": "avx2" if machine["isa"] != "avx2" else "amx"}),
        tuning_key("abc", None, None, SHAPE, {**machine, "libraries": {**machine["libraries"], "torch": "0"}}),
        tuning_key("abc", None, None, SHAPE, machine, "onnxruntime"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_tune_measures_every_usable_route_once_then_reads_the_cache(small_weights: Path, cache: Path) -> None:
    lines: list[str] = []
    first = tune(small_weights, shape=SHAPE, budget_s=0.05, log=lines.append)
    assert not first.from_cache and first.shape == SHAPE
    backends = {t.backend for t in first.timings}
    assert "torch" in backends and "onnxruntime" in backends  # weights also run as ONNX made on first use
    assert all(t.runs >= 2 and t.p50_ms is not None and t.p50_ms > 0 for t in first.timings if t.status == "ok")
    ok = [t.p50_ms for t in first.timings if t.p50_ms is not None]
    assert ok == sorted(ok) and first.best.p50_ms == ok[0]  # fastest first
    assert first.route() in RANKING and first.route().backend == first.best.backend
    assert "measured now" in first.summary() and any(line.startswith("tune ") for line in lines)
    again = tune(small_weights, shape=SHAPE, budget_s=0.05)
    assert again.from_cache and again.timings == first.timings and "cached measurement" in again.summary()
    assert list(read_cache(cache)) == [first.key]
    other_shape = tune(small_weights, shape=(1, 3, 10, 10), budget_s=0.05)
    assert not other_shape.from_cache and len(read_cache(cache)) == 2
    assert not tune(small_weights, shape=SHAPE, budget_s=0.05, refresh=True).from_cache
    one = tune(small_weights, shape=SHAPE, budget_s=0.05, backend="onnxruntime")  # only that backend's routes
    assert not one.from_cache and {t.backend for t in one.timings} == {"onnxruntime"} and len(read_cache(cache)) == 3


def test_int8_of_weights_times_the_file_load_makes(small_weights: Path, cache: Path) -> None:
    notes: list[str] = []
    timed = tune(small_weights, precision="int8", shape=SHAPE, budget_s=0.05, backend="onnxruntime", log=notes.append)
    made = converted_path(small_weights, "onnx", "int8", None, backend="onnxruntime")  # as load(precision="int8")
    assert made.is_file() and sum(n.startswith("quantizing ") for n in notes) == 1
    assert [(t.backend, t.precision, t.status) for t in timed.timings] == [("onnxruntime", "int8", "ok")]
    assert read_cache(cache)[timed.key]["model"] == str(made)


def test_a_corrupt_cache_is_ignored_and_rewritten(small_weights: Path, cache: Path) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text("{ not json")
    assert read_cache(cache) == {}
    result = tune(small_weights, shape=SHAPE, budget_s=0.05)
    assert not result.from_cache and list(json.loads(cache.read_text())) == [result.key]
    cache.write_text(json.dumps({result.key: {"timings": [{"bogus": 1}]}}))  # a malformed entry is measured again
    assert not tune(small_weights, shape=SHAPE, budget_s=0.05).from_cache


def _save_entries(cache: str, prefix: str, count: int, start: Barrier) -> None:
    start.wait()
    for i in range(count):
        save_entry(Path(cache), f"{prefix}{i}", float(i))


def test_processes_saving_at_once_keep_each_others_entries(cache: Path) -> None:
    context = multiprocessing.get_context("spawn")  # like the actors of a cluster job tuning on one node
    start = context.Barrier(3)
    workers = [context.Process(target=_save_entries, args=(str(cache), prefix, 25, start)) for prefix in "abc"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert read_cache(cache) == {f"{prefix}{i}": float(i) for prefix in "abc" for i in range(25)}
