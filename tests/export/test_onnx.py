from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.bench.config import parse_size
from sr_deploy.cli import app
from sr_deploy.errors import ExportError, ParityError
from sr_deploy.export.onnx import export_onnx
from sr_deploy.models import load_weights, save_weights
from sr_deploy.runtime import load
from sr_deploy.runtime.tiling import upscale_tiled
from tests.helpers import SMALL, random_srresnet


def test_round_trip_dynamic_sizes_and_batches(trained_tiny_weights: Path, trained_tiny_onnx: Path) -> None:
    model = onnx.load(str(trained_tiny_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert {n.op_type for n in model.graph.node} == {"Conv", "PRelu", "Add", "DepthToSpace"}
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_param for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert (model.graph.input[0].name, dims) == ("lr", ["batch", "", "height", "width"])
    assert (model.graph.output[0].name, out_dims) == ("sr", ["batch", "", "out_height", "out_width"])
    ort_up = load(trained_tiny_onnx)
    net, desc = load_weights(trained_tiny_weights)
    ref = TorchUpscaler(net, desc)
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 17, 23), (3, 3, 32, 20), (2, 3, 9, 64)]:
        x = rng.random(shape, dtype=np.float32)
        out = ort_up.run(x)
        assert out.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)
        np.testing.assert_allclose(out, ref.run(x), atol=1e-5)


def test_metadata_present(trained_tiny_weights: Path, trained_tiny_onnx: Path) -> None:
    from sr_deploy.artifacts import sha256_file

    props = meta.read_props(onnx.load(str(trained_tiny_onnx)))
    assert props[meta.PRECISION] == "fp32"
    assert props[meta.SOURCE_SHA256] == sha256_file(trained_tiny_weights)
    assert props[meta.SOURCE] == str(trained_tiny_weights)
    assert props[meta.VERSION]
    _, desc = load_weights(trained_tiny_weights)
    assert meta.load_sr_onnx(trained_tiny_onnx)[1] == desc


def test_static_size(trained_tiny_weights: Path, tmp_path: Path) -> None:
    path = export_onnx(trained_tiny_weights, tmp_path / "static.onnx", opset=13, static=(32, 40)).path
    model = onnx.load(str(path))
    assert meta.static_size(model) == (32, 40)
    assert model.opset_import[0].version == 13
    up = load(path)
    assert up.run(np.zeros((2, 3, 32, 40), np.float32)).shape == (2, 3, 128, 160)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        up.run(np.zeros((1, 3, 20, 30), np.float32))
    with pytest.raises(ExportError, match="a static input of 24x40 leaves no core inside the model's 12-pixel halo"):
        export_onnx(trained_tiny_weights, tmp_path / "small.onnx", static=(24, 40))  # nothing could be upscaled
    # the file runs at one size only: an image of another size is tiled into windows of it, like the torch result
    assert up.descriptor.fixed_size == (32, 40) and meta.sr_file_props(path)[1].fixed_size == (32, 40)
    image = np.random.default_rng(0).random((3, 37, 45), dtype=np.float32)
    with TorchUpscaler(*load_weights(trained_tiny_weights)) as reference:
        assert np.abs(upscale_tiled(up, image) - upscale_tiled(reference, image)).max() <= 1e-4


def test_a_descriptor_that_does_not_describe_the_network_is_refused(tmp_path: Path) -> None:
    """An x4 network given as x2 passed the gate (both sides ran the same network) and then scored the top-left
    quarter of its outputs."""
    wrong = dataclasses.replace(SMALL, scale=2)
    with pytest.raises(ValueError, match=r"returned \(1, 3, 160, 224\) for \(1, 3, 40, 56\), its descriptor \(x2"):
        export_onnx(random_srresnet(), tmp_path / "m.onnx", descriptor=wrong)
    assert not (tmp_path / "m.onnx").exists()
    with TorchUpscaler(random_srresnet(), wrong) as up, pytest.raises(ValueError, match="its descriptor"):
        up.run(np.zeros((1, 3, 8, 8), np.float32))


def test_parity_gate_rejects_nan_weights_and_writes_nothing(trained_tiny_weights: Path, tmp_path: Path) -> None:
    net, desc = load_weights(trained_tiny_weights)
    with torch.no_grad():
        net.tail.weight[0, 0, 0, 0] = float("nan")
    broken = save_weights(net, desc, tmp_path / "broken.safetensors")
    dest = tmp_path / "out.onnx"
    dest.write_bytes(b"previous version")
    with pytest.raises(ParityError, match="parity gate failed.*non-finite") as info:
        export_onnx(broken, dest)
    assert not info.value.report.passed
    assert dest.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.onnx")] == []


def test_bad_inputs(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        export_onnx(tmp_path / "nope.safetensors", tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="already ONNX"):
        export_onnx(trained_tiny_onnx, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("128")
    with pytest.raises(ExportError, match="opset 11 is too old"):
        export_onnx(trained_tiny_onnx.with_suffix(".safetensors"), tmp_path / "x.onnx", opset=11)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_onnx_and_evaluate(trained_tiny_weights: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.onnx"
    res = runner.invoke(app, ["export", "onnx", str(trained_tiny_weights), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "PSNR" in res.output and out.is_file()
    res = runner.invoke(app, ["evaluate", "--model", str(out), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", "onnx", str(tmp_path / "missing.pt"), "-o", str(out)])
    assert res.exit_code == 2 and "missing.pt" in res.output
