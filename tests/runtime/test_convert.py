"""Conversion on demand: a weights file runs on an ONNX backend through a file made once and reused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.artifacts import sha256_file
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.errors import BackendUnavailable, ExportError
from sr_deploy.export.onnx import export_onnx
from sr_deploy.hardware import this_cpu
from sr_deploy.models import save_weights
from sr_deploy.runtime.convert import cache_root, convert, convert_int8, converted_path, int8_layout_for
from sr_deploy.runtime.load import load_selected
from tests.helpers import SMALL, random_srresnet


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_named_onnx_backend_converts_weights_once_and_reuses_the_file(small_weights: Path, cache: Path) -> None:
    assert cache_root() == cache
    notes: list[str] = []
    up, selection = load_selected(small_weights, backend="onnxruntime", log=notes.append)
    assert isinstance(up, OrtUpscaler) and up.precision == "fp32"
    assert "made from the weights on first use" in selection.reason
    made = converted_path(small_weights, "onnx", "fp32")
    assert made.parent == cache / "converted" and made.is_file() and any("first use" in n for n in notes)
    stamp = made.stat().st_mtime_ns
    again, _ = load_selected(small_weights, backend="onnxruntime", log=notes.append)
    assert made.stat().st_mtime_ns == stamp and len([n for n in notes if "exporting" in n]) == 1  # reused
    x = np.random.default_rng(0).random((1, 3, 9, 11), dtype=np.float32)
    torch_up, _ = load_selected(small_weights, backend="torch")
    assert np.abs(again.run(x) - torch_up.run(x)).max() <= 1e-4


def test_conversion_key_follows_the_weights_and_precision(small_weights: Path, tmp_path: Path, cache: Path) -> None:
    other = save_weights(random_srresnet(seed=1), SMALL, tmp_path / "small-x4.safetensors")  # same name, new weights
    assert converted_path(other, "onnx", "fp32") != converted_path(small_weights, "onnx", "fp32")
    assert sha256_file(small_weights)[:20] in converted_path(small_weights, "onnx", "fp32").name
    fp16 = convert(small_weights, "onnx", "fp16")
    assert fp16 == converted_path(small_weights, "onnx", "fp16") and fp16.is_file()
    assert converted_path(small_weights, "onnx", "fp32").is_file()  # fp16 is made from the cached fp32
    with pytest.raises(ValueError, match="no conversion of weights to a int8 engine"):
        converted_path(small_weights, "engine", "int8")
    # int8: one file per backend's plan, accuracy gate (plain or a budget) and CPU class
    int8 = {converted_path(small_weights, "onnx", "int8", drop, backend=backend)
            for drop in (None, 0.1, 0.2) for backend in ("onnxruntime", "openvino")}
    assert len(int8) == 6 and all(this_cpu().isa in p.name for p in int8)
    with pytest.raises(ValueError, match="int8 is made on demand for onnxruntime, openvino or auto, not torch"):
        converted_path(small_weights, "onnx", "int8", backend="torch")


def test_engines_are_cached_per_gpu_architecture(small_weights: Path, cache: Path) -> None:
    hopper = converted_path(small_weights, "engine", "fp16", gpu="sm_90")
    ada = converted_path(small_weights, "engine", "fp16", gpu="sm_89")
    assert hopper != ada and "-fp16-sm_90-" in hopper.name and hopper.suffix == ".engine"
    assert converted_path(small_weights, "onnx", "fp16", gpu="sm_90") == converted_path(small_weights, "onnx", "fp16")


def test_processes_that_need_the_same_file_at_once_make_it_once(small_weights: Path, cache: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    notes: list[str] = []
    with ThreadPoolExecutor(3) as pool:  # each call opens its own lock file description, as processes do
        made = list(pool.map(lambda _i: convert(small_weights, "onnx", "fp16", notes.append), range(3)))
    assert made == [converted_path(small_weights, "onnx", "fp16")] * 3 and made[0].is_file()
    assert sum(n.startswith("exporting ") for n in notes) == 1, notes
    assert sum(n.startswith("converting ") for n in notes) == 1, notes


def test_auto_does_not_convert_and_conversion_can_be_refused(small_weights: Path, cache: Path) -> None:
    up, selection = load_selected(small_weights)
    assert up.name.startswith("torch") and not (cache / "converted").exists()
    with pytest.raises(BackendUnavailable, match="export onnx"):
        load_selected(small_weights, backend="onnxruntime", convert=False)


@pytest.mark.parametrize(("vnni", "openvino", "layout"), [
    (True, True, "tensorrt"),  # OpenVINO's VNNI kernels on symmetric activations: the fastest measured
    (False, True, "ort-cpu"),  # symmetric int8 collapses on OpenVINO without VNNI
    (True, False, "ort-cpu"),  # ONNX Runtime runs the symmetric layout about as slowly as fp32
    (False, False, "ort-cpu"),
])
def test_int8_layout_made_on_demand_follows_the_cpu(vnni: bool, openvino: bool, layout: str) -> None:
    assert int8_layout_for(vnni, openvino) == layout


def test_a_refused_int8_conversion_is_answered_from_the_cache(small_weights: Path, tmp_path: Path,
                                                               cache: Path) -> None:
    fixed = export_onnx(small_weights, tmp_path / "wide.onnx", static=(32, 48)).path  # int8 needs square crops
    notes: list[str] = []
    with pytest.raises(ExportError, match="int8 needs square crops") as first:
        convert_int8(fixed, None, notes.append, "onnxruntime")
    assert "cached" not in str(first.value) and sum(n.startswith("quantizing ") for n in notes) == 1
    target = converted_path(fixed, "onnx", "int8", None, backend="onnxruntime")
    refusal = target.with_name(target.name + ".refused.json")
    assert not target.exists() and refusal.is_file()  # no model, only the refusal
    with pytest.raises(ExportError, match=rf"int8 needs square crops.*cached: delete {re.escape(str(refusal))}"):
        convert_int8(fixed, None, notes.append, "onnxruntime")
    assert sum(n.startswith("quantizing ") for n in notes) == 1  # answered without converting again
    refusal.write_text("{not json")  # an unreadable record counts as none: converted again, record rewritten
    with pytest.raises(ExportError, match="int8 needs square crops") as again:
        convert_int8(fixed, None, notes.append, "onnxruntime")
    assert "cached" not in str(again.value) and json.loads(refusal.read_text())["error"] == str(again.value)
