"""What a model file is and how it would run here (``sr-deploy info MODEL``): real files, this machine's facts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.trt_metadata import write_metadata
from sr_deploy.cli import app
from sr_deploy.export.int8 import export_int8
from sr_deploy.export.onnx import export_onnx
from sr_deploy.hardware import this_cpu
from sr_deploy.models.weights import load_weights
from sr_deploy.runtime.describe import describe
from sr_deploy.runtime.select import machine_facts
from tests.backends.test_trt_metadata import meta as engine_metadata


@pytest.fixture(scope="module")
def int8_8bit(small_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ort-cpu int8 file with 8-bit weights (uint8 activations), validated on this CPU."""
    path = tmp_path_factory.mktemp("describe") / "m.int8.onnx"
    return export_int8(small_onnx, path, target="ort-cpu", num_images=2, max_plain_drop=math.inf,
                       reduce_range=False).path


def _with_validation(src: Path, dst: Path, validated_on: dict[str, object] | None) -> Path:
    """``src`` with its calibration's ``validated_on`` replaced (None: removed)."""
    model = onnx.load(str(src))
    calibration = json.loads(meta.read_props(model)[meta.CALIBRATION])
    calibration.pop("validated_on")
    if validated_on is not None:
        calibration["validated_on"] = validated_on
    meta.write_props(model, {meta.CALIBRATION: calibration})
    onnx.save(model, str(dst))
    return dst


def test_weights_are_described_by_their_descriptor(small_weights: Path) -> None:
    facts = describe(small_weights)
    _, desc = load_weights(small_weights)
    assert (facts["kind"], facts["precision"]) == ("weights", None)
    assert facts["descriptor"] == desc.to_dict() and facts["receptive_radius_lr_px"] == desc.receptive_radius
    assert facts["auto"]["route"] is not None and facts["auto"]["route"].endswith(("on cpu", ")"))
    assert "int8" not in facts


def test_an_int8_file_says_where_it_was_validated_and_what_to_expect_here(int8_8bit: Path, tmp_path: Path) -> None:
    cpu = this_cpu()
    facts = describe(int8_8bit)
    assert facts["kind"] == "onnx" and facts["precision"] == "int8"
    int8 = facts["int8"]
    assert (int8["layout"], int8["weight_bits"], int8["validated_isa"], int8["validated_vnni"]) == (
        "ort-cpu", 8, cpu.isa, cpu.vnni)
    assert int8["validated_engine"] == json.loads(meta.file_props(int8_8bit)[meta.CALIBRATION])["validated_on"][
        "engine"] == "onnxruntime"  # export_int8's default measure_on
    assert int8["here"] == f"validated on this CPU class ({cpu.isa}): expect its recorded drop"
    # the same file validated on a VNNI CPU of another class: 8-bit u8s8 saturates here exactly where there is no VNNI
    other = "avx512_vnni" if cpu.isa != "avx512_vnni" else "amx"
    moved = _with_validation(int8_8bit, tmp_path / "moved.onnx", {"isa": other, "vnni": True, "psnr_drop_db": 0.1})
    here = describe(moved)["int8"]["here"]
    assert here.startswith("WARNING" if not cpu.vnni else "NOTE") and f"validated on a {other} CPU" in here
    unknown = describe(_with_validation(int8_8bit, tmp_path / "unknown.onnx", None))["int8"]
    assert unknown["validated_isa"] is None and "records no validation CPU" in unknown["here"]


def test_an_engine_is_described_by_its_sidecar_and_says_why_it_cannot_run_here(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized engine")  # never deserialized: describing reads the sidecar only
    sidecar = engine_metadata()
    write_metadata(engine, sidecar)
    facts = describe(engine)
    assert (facts["kind"], facts["precision"], facts["descriptor"]) == ("engine", "fp16", sidecar.descriptor)
    if machine_facts().tensorrt:  # no TensorRT here: auto has no route, and says why
        assert facts["auto"]["route"] is None and "TensorRT" in facts["auto"]["reason"]


def test_info_with_a_model(int8_8bit: Path, small_weights: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(int8_8bit), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["model"] == describe(int8_8bit) and facts["machine"]["cpu"]["isa_class"] == this_cpu().isa
    table = CliRunner().invoke(app, ["info", str(int8_8bit)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "ort-cpu layout, 8-bit weights" in table.stdout
    words = " ".join(table.stdout.split())
    assert "with onnxruntime, Y-PSNR drop" in words
    assert "auto, ranked" in words and "auto, timed" in words  # the static choice is not what upscale will time
    assert "input size" not in words  # dynamic
    static = export_onnx(small_weights, tmp_path / "static.onnx", static=(32, 48)).path
    words = " ".join(CliRunner().invoke(app, ["info", str(static)], env={"COLUMNS": "200"}).stdout.split())
    assert "input size │ fixed 32x48: other sizes are tiled into windows of it" in words
    missing = CliRunner().invoke(app, ["info", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and "none.onnx" in missing.output
    report = CliRunner().invoke(app, ["info", str(tmp_path / "none.onnx"), "--json"])  # still a bug report
    facts = json.loads(report.stdout)
    assert report.exit_code == 2 and "none.onnx" in facts["model"]["error"] and facts["machine"]["cpu"]["isa_class"]
