"""``sr-deploy evaluate`` end to end (Typer's CliRunner: real files, real images, stdout kept apart)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sr_deploy.cli import app
from sr_deploy.data import embedded_images, write_image
from tests.test_scoring import folder_with_a_bad_image

runner = CliRunner()


def test_evaluate_bicubic_json_on_embedded_images() -> None:
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--json"])
    assert result.exit_code == 0, result.stderr
    obj = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    assert set(obj) == {"model", "scale", "images", "mean", "skipped"}
    assert obj["skipped"] == []
    assert obj["model"] == "bicubic" and obj["scale"] == 4
    assert [row["name"] for row in obj["images"]] == [p.stem for p in embedded_images("eval")]
    for row in obj["images"]:
        assert set(row) == {"name", "psnr_y", "ssim_y"}
        assert 15 < row["psnr_y"] < 45 and 0.2 < row["ssim_y"] < 1
    assert set(obj["mean"]) == {"psnr_y", "ssim_y"}
    for key in ("psnr_y", "ssim_y"):
        assert obj["mean"][key] == np.mean([row[key] for row in obj["images"]])


def test_evaluate_scale_and_folder(tmp_path: Path) -> None:
    y, x = np.mgrid[0:64, 0:48]
    write_image(tmp_path / "ramp.png", np.stack([x * 5, y * 3, (x + y) * 2], axis=2).astype(np.uint8))
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--scale", "2", "--data", str(tmp_path),
                                 "--json"])
    assert result.exit_code == 0, result.stderr
    obj = json.loads(result.stdout)
    assert obj["scale"] == 2 and [row["name"] for row in obj["images"]] == ["ramp"]


def test_evaluate_table_output() -> None:
    result = runner.invoke(app, ["evaluate", "--model", "bicubic"])
    assert result.exit_code == 0
    for path in embedded_images("eval"):
        assert path.stem in result.stdout
    assert "mean" in result.stdout


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to see")
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--json"])
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "contains no images" in result.stderr and str(tmp_path) in result.stderr


def test_folder_with_only_unreadable_images(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "skipped broken: " in result.stderr and "no image could be scored" in result.stderr


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / ("a-folder-name-long-enough-to-push-the-message-past-eighty-columns-" * 2)
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(missing)])
    assert result.exit_code != 0
    assert str(missing) in result.stderr  # not wrapped mid-path: it can be copied from the terminal
    assert "does not exist" in result.stderr


def test_unknown_model() -> None:
    result = runner.invoke(app, ["evaluate", "--model", "no-such-model-x4", "--json"])
    assert result.exit_code != 0
    assert "no-such-model-x4" in result.stderr


def test_evaluate_json_is_strict_json_when_psnr_is_infinite(tmp_path: Path) -> None:
    """A flat image is reproduced exactly by bicubic: PSNR is inf, printed as null (strict JSON)."""
    write_image(tmp_path / "flat.png", np.full((64, 64, 3), 77, dtype=np.uint8))
    result = CliRunner().invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert obj["images"][0]["psnr_y"] is None and obj["mean"]["psnr_y"] is None


def test_scale_below_2_is_a_usage_error() -> None:
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--scale", "0"])
    assert result.exit_code == 2 and "--scale" in result.output


def test_file_name_that_is_not_utf8_is_scored(tmp_path: Path) -> None:
    y, x = np.mgrid[0:64, 0:48]
    write_image(tmp_path / "ok.png", np.stack([x * 5, y * 3, (x + y) * 2], axis=2).astype(np.uint8))
    fd = os.open(os.fsencode(tmp_path) + b"/bad\xff.png", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, (tmp_path / "ok.png").read_bytes())
    os.close(fd)
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.stdout)["images"]] == ["bad\\xff", "ok"]
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path)])
    assert result.exit_code == 0 and "bad\\xff" in result.stdout


def test_bad_image_is_skipped_and_named_json(tmp_path: Path) -> None:
    folder_with_a_bad_image(tmp_path)
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path),
                                 "--json"])
    assert result.exit_code == 1, result.stderr
    obj = json.loads(result.stdout)
    assert [row["name"] for row in obj["images"]] == ["a_good", "c_good"]
    assert [s["name"] for s in obj["skipped"]] == ["b_broken"] and obj["skipped"][0]["reason"]
    assert f"skipped b_broken: {obj['skipped'][0]['reason']}" in result.stderr


def test_bad_image_is_skipped_and_named_table(tmp_path: Path) -> None:
    folder_with_a_bad_image(tmp_path)
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "a_good" in result.stdout and "c_good" in result.stdout and "mean" in result.stdout
    assert "b_broken" not in result.stdout and "skipped b_broken: " in result.stderr


def test_images_over_max_pixels_are_skipped_from_their_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "small.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    write_image(tmp_path / "large.png", rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    result = runner.invoke(app, ["evaluate", "--model", "bicubic", "--data", str(tmp_path), "--json",
                                 "--max-pixels", "2000"])
    assert result.exit_code == 1, result.stderr
    obj = json.loads(result.stdout)
    assert [row["name"] for row in obj["images"]] == ["small"]
    assert obj["skipped"] == [{"name": "large", "reason": "too large (48x64, limit 2,000 pixels; see max_pixels)"}]
