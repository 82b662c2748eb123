"""`sr-deploy upscale` with a third-party checkpoint: an image file in, the upscaled file out."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sr_deploy.cli import app
from sr_deploy.data.image_io import read_image, write_image
from tests.helpers import save_third_party

pytestmark = pytest.mark.skipif(find_spec("spandrel") is None, reason="needs the [models] extra (spandrel)")


def test_upscale_an_image_with_a_pth_checkpoint(tmp_path: Path) -> None:
    weights = save_third_party("compact-x4", tmp_path / "realesr-compact-x4.pth")
    src = tmp_path / "in.png"
    write_image(src, (np.random.default_rng(0).random((19, 23, 3)) * 255).astype(np.uint8))
    result = CliRunner().invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(weights),
                                      "--backend", "torch", "--no-tune"])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "out" / "in.png")
    assert out.shape == (76, 92, 3) and out.dtype == np.uint8


def test_an_unknown_checkpoint_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    weights = tmp_path / "mystery.ckpt"
    torch.save({"state_dict": {"foo.weight": torch.zeros(2, 2)}}, weights)
    src = tmp_path / "in.png"
    write_image(src, np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(weights),
                                      "--backend", "torch", "--no-tune"])
    assert result.exit_code != 0
    assert "mystery.ckpt" in result.output and "foo.weight" in result.output


def test_export_onnx_reports_a_fixed_shape_fallback(tmp_path: Path) -> None:
    weights = save_third_party("swinir-x2", tmp_path / "swinir-x2.safetensors")
    result = CliRunner().invoke(app, ["export", "onnx", str(weights), "-o", str(tmp_path / "s.onnx")])
    assert result.exit_code == 0, result.output
    assert "note: dynamic height/width failed the gate" in result.output and "fixed 64x64" in result.output


def test_upscale_auto_tunes_a_fixed_shape_export_through_its_windows(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))
    weights = save_third_party("swinir-x2", tmp_path / "swinir-x2.safetensors")  # ONNX only at a fixed 64x64
    src = tmp_path / "in.png"
    write_image(src, (np.random.default_rng(1).random((40, 52, 3)) * 255).astype(np.uint8))
    result = CliRunner().invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(weights)])
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output.split("upscaling")[0]  # every route timed, the fixed ones tiled
    assert read_image(tmp_path / "out" / "in.png").shape == (80, 104, 3)
