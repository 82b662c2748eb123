"""Accuracy-budgeted selection: reduced precisions are chosen only within a Y-PSNR drop measured here."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sr_deploy.backends import onnx_metadata
from sr_deploy.errors import BackendUnavailable
from sr_deploy.export.int8 import PLAIN_MAX_DROP_DB
from sr_deploy.runtime.convert import convert_int8, converted_path, cpu_int8_engine, int8_plan
from sr_deploy.runtime.load import budget_options, file_budget, load_selected
from sr_deploy.runtime.select import Artifact, identify, machine_facts

# both tests share one cache, so the int8 conversion within the budget is made once (by whichever runs first)
pytestmark = pytest.mark.xdist_group("runtime_load_cache")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SR_DEPLOY_CACHE", str(folder))
        yield folder


def test_options_are_fp32_and_reduced_precisions_within_the_measured_budget(small_weights: Path, cache: Path) -> None:
    notes: list[str] = []
    options = budget_options(identify(small_weights), 0.5, None, notes.append)
    by_precision = {o.precision: o for o in options}
    assert by_precision["fp32"].drop == 0.0 and all(o.drop <= 0.5 for o in options)
    int8 = converted_path(small_weights, "onnx", "int8", 0.5)
    assert int8.is_file() and by_precision["int8"].artifact.path == int8  # made within the budget, on first use
    calibration = json.loads(onnx_metadata.file_props(int8)[onnx_metadata.CALIBRATION])
    assert calibration["max_psnr_drop_db"] == 0.5 and calibration["psnr_drop_db"] == by_precision["int8"].drop
    # measured on the engine that runs int8 fastest here (OpenVINO when installed), and run only there
    assert calibration["validated_on"]["engine"] == by_precision["int8"].engine == cpu_int8_engine()
    if machine_facts().cpu_bf16:
        assert any("bf16" in n and "Y-PSNR drop" in n for n in notes)  # measured, kept or not by its drop
    else:
        assert "bf16" not in by_precision  # emulated bf16 is never a candidate


def test_budgeted_load_says_what_it_chose_and_why(small_weights: Path, cache: Path) -> None:
    up, selection = load_selected(small_weights, max_psnr_drop=0.5, tune_shape=(1, 3, 12, 12))
    assert up.precision in ("fp32", "bf16", "int8")
    assert f"{up.precision}: Y-PSNR drop " in selection.reason and "(budget 0.5 dB)" in selection.reason
    assert "measured now" in selection.reason or "cached measurement" in selection.reason
    # the trade-off the choice was made on: every option's fastest route, timed, with its drop; the choice first
    table = selection.reason.split("; the options, fastest first (timed): ")[1]
    rows = re.findall(r"(fp32|bf16|fp16|int8) ([\d.]+) ms on (\w+) \((the reference|drop -?[\d.]+ dB)\)", table)
    assert len(rows) == table.count(", ") + 1 >= 2 and rows[0][0] == up.precision  # fp32 and int8 at least
    assert [float(r[1]) for r in rows] == sorted(float(r[1]) for r in rows)
    assert {r[0]: r[3] for r in rows}["fp32"] == "the reference"
    if up.precision == "int8":
        assert selection.route.backend == cpu_int8_engine()
    fixed, plain = load_selected(small_weights, max_psnr_drop=0.5, precision="fp32")  # an explicit precision wins
    assert fixed.precision == "fp32" and "budget" not in plain.reason
    with pytest.raises(ValueError, match="max_psnr_drop must be >= 0 dB"):
        load_selected(small_weights, max_psnr_drop=-1)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_from_weights_is_made_for_the_backend_on_first_use(small_weights: Path, cache: Path,
                                                                 backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed (CI installs the openvino extra)")
    notes: list[str] = []
    up, selection = load_selected(small_weights, backend=backend, precision="int8", log=notes.append)
    made = converted_path(small_weights, "onnx", "int8", None, backend=backend)
    assert made.is_file() and selection.artifact.path == made and up.precision == "int8"
    assert selection.route.backend == backend and selection.route.device == "cpu"  # where its drop was measured
    calibration = json.loads(onnx_metadata.file_props(made)[onnx_metadata.CALIBRATION])
    assert "max_psnr_drop_db" not in calibration and calibration["validated_on"]["engine"] == backend
    assert calibration["layout"] == int8_plan(backend)[0]
    drop = calibration["psnr_drop_db"]
    assert selection.reason.startswith(f"int8 made from the weights on first use (every layer, limit "
                                       f"{PLAIN_MAX_DROP_DB:g} dB; cached): Y-PSNR drop {drop:.3f} dB against fp32 "
                                       f"measured here on {backend}")
    assert sum(n.startswith("quantizing ") for n in notes) == 1
    up.close()
    again: list[str] = []
    with load_selected(small_weights, backend=backend, precision="int8", log=again.append)[0] as reused:
        assert reused.precision == "int8" and not any(n.startswith("quantizing ") for n in again)
    with pytest.raises(BackendUnavailable, match="export int8"):  # conversion refused: the file must exist
        load_selected(small_weights, backend=backend, precision="int8", convert=False)


def test_a_budget_with_a_backend_chooses_among_that_backends_routes(small_weights: Path, cache: Path) -> None:
    notes: list[str] = []
    up, selection = load_selected(small_weights, backend="onnxruntime", max_psnr_drop=0.5,
                                  tune_shape=(1, 3, 12, 12), log=notes.append)
    with up:
        assert selection.route.backend == "onnxruntime" and "(budget 0.5 dB)" in selection.reason
    timed = [n for n in notes if n.startswith("tune ")]
    assert timed and all(n.startswith("tune onnxruntime ") for n in timed)  # no other backend is timed
    table = selection.reason.split("; the options, fastest first (timed): ")[1]
    assert re.findall(r" on (\w+) \(", table) == ["onnxruntime"] * (table.count(", ") + 1)
    assert converted_path(small_weights, "onnx", "int8", 0.5, backend="onnxruntime").is_file()


def test_a_file_is_held_to_the_drop_it_records(small_weights: Path, small_onnx: Path, cache: Path) -> None:
    int8 = convert_int8(small_weights, 0.5)  # the file the budgeted tests made (or made now), drop recorded
    recorded = identify(int8).recorded_drop
    assert recorded is not None
    if recorded > 2e-6:  # (a tiny model's int8 can even gain on fp32: then no budget is under its drop)
        with pytest.raises(ValueError, match=rf"{re.escape(str(int8))} records a Y-PSNR drop of {recorded:.3f} dB"):
            load_selected(int8, max_psnr_drop=recorded / 2)  # over budget: not run
    up, selection = load_selected(int8, max_psnr_drop=max(recorded, 0.0) + 0.01)
    with up:
        assert f"recorded Y-PSNR drop {recorded:.3f} dB on a {machine_facts().cpu_isa} CPU" in selection.reason


def test_budget_of_a_file_by_what_it_records(tmp_path: Path) -> None:
    here = machine_facts()
    fp16 = Artifact(tmp_path / "m.fp16.onnx", "onnx", "fp16")
    assert file_budget(fp16, None, 0.1) == "the 0.1 dB budget is not checked: m.fp16.onnx records no Y-PSNR drop"
    assert file_budget(fp16, "fp32", 0.1) == "the 0.1 dB budget is not used: --precision fp32 runs as asked"
    int8 = Artifact(tmp_path / "m.int8.onnx", "onnx", "int8", "ort-cpu", here.cpu_isa, here.cpu_vnni, False, 0.12,
                    "openvino")
    assert file_budget(int8, None, 0.2).startswith(f"recorded Y-PSNR drop 0.120 dB on a {here.cpu_isa} CPU (openvino)")
    with pytest.raises(ValueError, match="over the 0.1 dB budget"):
        file_budget(int8, None, 0.1)
    # 8-bit uint8 x int8 weights validated with VNNI elsewhere: on a CPU without VNNI they saturate (about 2 dB more)
    elsewhere = dataclasses.replace(int8, validated_isa="avx512_bf16" if here.cpu_isa != "avx512_bf16" else "amx",
                                    validated_vnni=True)
    if here.cpu_vnni:
        assert "within the 0.2 dB budget" in file_budget(elsewhere, None, 0.2)
    else:
        with pytest.raises(ValueError, match="cannot be held to the 0.2 dB budget here: WARNING"):
            file_budget(elsewhere, None, 0.2)


def test_an_fp32_onnx_file_is_budgeted_like_its_weights(small_onnx: Path, cache: Path) -> None:
    notes: list[str] = []
    options = budget_options(identify(small_onnx), 0.5, None, notes.append)
    by_precision = {o.precision: o for o in options}
    int8 = converted_path(small_onnx, "onnx", "int8", 0.5)  # quantized from the file itself, under its sha256
    assert int8.is_file() and by_precision["int8"].artifact.path == int8
    calibration = json.loads(onnx_metadata.file_props(int8)[onnx_metadata.CALIBRATION])
    assert calibration["psnr_drop_db"] == by_precision["int8"].drop <= 0.5
    assert onnx_metadata.file_props(int8)[onnx_metadata.SOURCE] == str(small_onnx)
    if machine_facts().cpu_bf16 and machine_facts().openvino is None:  # bf16 of the fp32 ONNX: OpenVINO only
        assert any(n.startswith("openvino bf16 on cpu (CPU): Y-PSNR drop ") for n in notes)
    else:
        assert "bf16" not in by_precision
    up, selection = load_selected(small_onnx, max_psnr_drop=0.5)  # static ranking
    with up:
        assert f"{up.precision}: Y-PSNR drop " in selection.reason and "(budget 0.5 dB)" in selection.reason
    explicit: list[str] = []
    up, selection = load_selected(small_onnx, backend="onnxruntime", precision="int8", log=explicit.append)
    with up:
        made = converted_path(small_onnx, "onnx", "int8", None, backend="onnxruntime")
        assert up.precision == "int8" and selection.artifact.path == made and made.is_file()
        assert selection.reason.startswith("int8 made from the fp32 ONNX on first use (every layer, limit ")
    assert sum(n.startswith("quantizing ") for n in explicit) == 1
    with pytest.raises(ValueError, match="export int8"):  # conversion refused: the file must exist
        load_selected(small_onnx, precision="int8", convert=False)


def test_a_budget_is_not_used_by_files_that_run_as_they_are(tmp_path: Path) -> None:
    engine = Artifact(tmp_path / "m.engine", "engine", "fp32")
    assert file_budget(engine, None, 0.1) == ("the 0.1 dB budget is not used: the fp32 engine runs as it is (weights "
                                              "or an fp32 ONNX let the budget choose a precision)")
