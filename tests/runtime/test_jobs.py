"""Upscaling many files: inputs -> outputs, corrupt files skipped and reported, --overwrite; library and CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.cli import app
from sr_deploy.data import read_image, write_image
from sr_deploy.runtime.jobs import expand_inputs, plan_job, run_job
from tests.helpers import SMALL, random_srresnet

runner = CliRunner()


def pic(h: int = 9, w: int = 11, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Two good images, a truncated PNG, a text file named .jpg, an empty .png and a non-image suffix."""
    d = tmp_path / "in"
    write_image(d / "a.png", pic(seed=1))
    write_image(d / "b.jpg", pic(8, 6, seed=2))
    good = (d / "a.png").read_bytes()
    (d / "broken.png").write_bytes(good[: len(good) // 2])
    (d / "text.jpg").write_text("not a picture")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    return d


def test_expand_inputs_files_folders_globs(folder: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "deep" / "x" / "c.png", pic(seed=3))
    files, problems = expand_inputs([str(folder), str(folder / "a.png"), str(tmp_path / "deep" / "**" / "*.png"),
                                     str(tmp_path / "nothing*.png")])
    assert [f.name for f in files] == ["a.png", "b.jpg", "broken.png", "empty.png", "text.jpg", "c.png"]
    assert [p.message for p in problems] == [f"pattern {str(tmp_path / 'nothing*.png')!r} matches no images"]


def test_plan_outputs_folder_or_single_file(folder: Path, tmp_path: Path) -> None:
    plan = plan_job([str(folder / "a.png")], tmp_path / "single.png")
    assert plan.pairs == ((folder / "a.png", tmp_path / "single.png"),)
    plan = plan_job([str(folder / "a.png"), str(folder / "b.jpg")], tmp_path / "out")
    assert [d for _, d in plan.pairs] == [tmp_path / "out" / "a.png", tmp_path / "out" / "b.jpg"]
    with pytest.raises(ValueError, match="names one image file but 2 inputs"):
        plan_job([str(folder / "a.png"), str(folder / "b.jpg")], tmp_path / "x.png")
    write_image(tmp_path / "other" / "a.png", pic(seed=4))
    plan = plan_job([str(folder / "a.png"), str(tmp_path / "other" / "a.png"), str(folder / "b.jpg")], folder)
    assert not plan.pairs
    assert [p.message for p in plan.problems] == [
        f"the output would replace the input {folder / name}; choose another -o" for name in ("a.png", "a.png", "b.jpg")
    ]
    plan = plan_job([str(folder / "a.png"), str(tmp_path / "other" / "a.png")], tmp_path / "out")
    assert [p.message for p in plan.problems] == [f"{folder / 'a.png'} has the same output name {tmp_path}/out/a.png"]


def test_run_job_skips_bad_files_and_keeps_existing_outputs(folder: Path, tmp_path: Path) -> None:
    up = TorchUpscaler(random_srresnet(), SMALL)
    out = tmp_path / "out"
    plan = plan_job([str(folder)], out)
    seen: list[str] = []
    outcomes = run_job(up, plan, on_outcome=lambda o: seen.append(o.source.name))
    assert seen == ["a.png", "b.jpg", "broken.png", "empty.png", "text.jpg"]
    status = {o.source.name: (o.status, o.message) for o in outcomes}
    assert status["a.png"] == ("written", "44x36") and status["b.jpg"] == ("written", "24x32")
    assert status["broken.png"][0] == "failed" and "broken.png" in status["broken.png"][1]
    assert status["empty.png"] == ("failed", f"cannot read image {folder / 'empty.png'}: the file is empty")
    assert "not an image file" in status["text.jpg"][1]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]  # nothing half-written for the bad ones
    again = run_job(up, plan_job([str(folder / "a.png")], out))
    assert [(o.status, o.message) for o in again] == [("exists", f"{out / 'a.png'} exists; pass --overwrite to "
                                                                 "replace it")]


def test_cli_folder_with_corrupt_files(folder: Path, small_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["upscale", str(folder), "-o", str(out), "--model", str(small_weights), "--no-tune"])
    assert result.exit_code == 1, result.output
    assert "torch-fp32+channels_last on cpu" in result.stderr  # the static ranking
    for name in ("broken.png", "empty.png", "text.jpg"):
        assert f"skipped {folder / name}" in result.stderr
    assert "2 written, 0 left as they were" in result.stderr and "3 failed" in result.stderr
    assert read_image(out / "a.png").shape == (36, 44, 3) and read_image(out / "b.jpg").shape == (32, 24, 3)


def test_cli_overwrite(folder: Path, small_weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-x4.png"
    write_image(target, pic(2, 2, seed=9))
    before = target.read_bytes()
    args = ["upscale", str(folder / "a.png"), "-o", str(target), "--model", str(small_weights), "--tile", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "exists; pass --overwrite" in result.stderr
    assert target.read_bytes() == before
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.stderr
    assert "1 written, 0 left as they were (exist; --overwrite replaces them), 0 failed" in result.stderr
    up = TorchUpscaler(random_srresnet(), SMALL)
    from sr_deploy.runtime.images import upscale_image

    np.testing.assert_array_equal(read_image(target), upscale_image(up, read_image(folder / "a.png")))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic writes leave no temporaries


def test_cli_setup_errors_are_clear(folder: Path, small_weights: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "o"), "--model",
                                 str(small_weights), "--precision", "int8"])
    assert result.exit_code == 2 and "export it first with `sr-deploy export int8" in result.stderr
    result = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "o"), "--model",
                                 str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2 and "neither a file nor a shipped model" in result.stderr
    result = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "o"), "--tile", "-1"])
    assert result.exit_code == 2


def test_cli_upscale_times_the_routes_once_then_reads_the_cache(folder: Path, small_weights: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))  # nothing measured yet
    args = ["upscale", str(folder / "a.png"), "-o", str(tmp_path / "o1.png"), "--model", str(small_weights)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    assert "(fastest; measured now at 1x3x9x11:" in first.stderr  # a.png is 9 x 11: probed at its own size
    assert "tune torch fp32 on cpu (channels_last):" in first.stderr and "tune onnxruntime fp32" in first.stderr
    second = runner.invoke(app, [*args[:3], str(tmp_path / "o2.png"), *args[4:]])
    assert second.exit_code == 0 and "(fastest; cached measurement at 1x3x9x11:" in second.stderr
    assert read_image(tmp_path / "o1.png").shape == read_image(tmp_path / "o2.png").shape == (36, 44, 3)
