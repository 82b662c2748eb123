"""Upscaling many files: inputs -> outputs, corrupt files skipped and reported, --overwrite; library and CLI."""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.cli import app
from sr_deploy.data import ImageReadError, read_image, write_image
from sr_deploy.data.image_io import check_pixel_limit
from sr_deploy.runtime.jobs import expand_inputs, pair_outputs, plan_job, run_job
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
    # one file to a name with an unknown suffix: refused, not made a folder (a trailing separator makes one)
    with pytest.raises(ValueError, match=r"out.xyz: '.xyz' is not a suffix sr-deploy writes \(.*\.png"):
        plan_job([str(folder / "a.png")], tmp_path / "out.xyz")
    assert plan_job([str(folder / "a.png")], f"{tmp_path / 'out.v2'}/").pairs == (
        (folder / "a.png", tmp_path / "out.v2" / "a.png"),)
    assert {d.parent for _, d in plan_job([str(folder)], tmp_path / "results.v2").pairs} == {
        tmp_path / "results.v2"}  # a folder input: a folder output
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
        assert f"failed {folder / name}" in result.stderr
    assert "2 written, 0 left as they were" in result.stderr and "3 failed" in result.stderr
    assert read_image(out / "a.png").shape == (36, 44, 3) and read_image(out / "b.jpg").shape == (32, 24, 3)


def test_cli_overwrite(folder: Path, small_weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-x4.png"
    write_image(target, pic(2, 2, seed=9))
    before = target.read_bytes()
    args = ["upscale", str(folder / "a.png"), "-o", str(target), "--model", str(small_weights), "--tile", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "exists; pass --overwrite" in result.stderr  # an existing output is no failure
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
                                 str(small_weights), "--backend", "torch", "--precision", "int8"])
    assert result.exit_code == 2 and "int8 is not offered by torch on any device" in result.stderr, result.stderr
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


def test_cli_tune_shows_the_measured_table_of_one_backend(small_weights: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))
    args = ["tune", str(small_weights), "--size", "10x12", "--budget", "0.05", "--backend", "onnxruntime"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = re.findall(r"^[│|] (\w+) (fp32|fp16|bf16|int8) on (cpu|cuda)", result.stdout, re.MULTILINE)
    assert rows and {r[0] for r in rows} == {"onnxruntime"}, result.stdout  # no other backend is timed
    assert "1x3x10x12 on this machine" in result.stdout and "fastest: onnxruntime fp32 on cpu" in result.stderr
    assert "(cached)" in runner.invoke(app, args).stdout


def claim_size(png: Path, width: int, height: int) -> None:
    """Rewrite the IHDR of a real PNG so that its header claims ``width x height`` (CRC fixed); the file stays tiny."""
    data = bytearray(png.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    png.write_bytes(bytes(data))


def test_cli_refuses_a_decompression_bomb_from_its_header(small_weights: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    write_image(d / "a.png", pic(seed=1))
    write_image(d / "bomb.png", pic(seed=5))
    write_image(d / "c.png", pic(seed=2))
    claim_size(d / "bomb.png", 12000, 12000)
    assert (d / "bomb.png").stat().st_size < 1000
    out = tmp_path / "out"
    start = time.perf_counter()
    result = runner.invoke(app, ["upscale", str(d), "-o", str(out), "--model", str(small_weights), "--no-tune"])
    assert time.perf_counter() - start < 20  # 144 MP x 16 would take minutes and gigabytes: nothing decoded
    assert result.exit_code == 1, result.output
    assert f"failed {d / 'bomb.png'}" in result.stderr and "too large (12000x12000, limit" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    # the output counts too: at x8, 2000 x 1000 in is within 2 MP but 128 MP out is not within 2 MP x 16
    claim_size(d / "bomb.png", 2000, 1000)
    check_pixel_limit(d / "bomb.png", 4, 2_000_000)
    with pytest.raises(ImageReadError, match=r"too large \(2000x1000 -> 16000x8000, limit 32,000,000 output"):
        check_pixel_limit(d / "bomb.png", 8, 2_000_000)


class OutOfMemoryUpscaler(TorchUpscaler):
    """A real SRResNet that runs out of memory on inputs wider than 16 pixels (what a big photo does on a small
    machine), to show that an unexpected error sinks only its own file."""

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[3] > 16:
            raise MemoryError("cannot allocate 3.2 GiB")
        return super()._run(batch)


def test_any_error_fails_only_its_own_file(tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "a.png", pic(seed=1))
    write_image(tmp_path / "in" / "wide.png", pic(9, 40, seed=2))
    write_image(tmp_path / "in" / "z.png", pic(seed=3))
    up = OutOfMemoryUpscaler(random_srresnet(), SMALL)
    outcomes = run_job(up, plan_job([str(tmp_path / "in")], tmp_path / "out"), tile=0)
    status = {o.source.name: (o.status, o.message) for o in outcomes}
    assert status["a.png"][0] == status["z.png"][0] == "written"
    assert status["wide.png"] == ("failed", f"{tmp_path / 'in' / 'wide.png'}: MemoryError: cannot allocate 3.2 GiB")


def test_symlink_loops_are_reported_and_the_rest_processed(tmp_path: Path) -> None:
    d = tmp_path / "in"
    write_image(d / "good.png", pic(seed=1))
    os.symlink(d / "b.png", d / "a.png")
    os.symlink(d / "a.png", d / "b.png")
    os.symlink(tmp_path / "y.png", tmp_path / "x.png")
    os.symlink(tmp_path / "x.png", tmp_path / "y.png")
    files, problems = expand_inputs([str(d), str(tmp_path / "x.png")])
    assert files == [d / "good.png"]
    assert [(p.source, p.message) for p in problems] == [
        (d / "a.png", f"{d / 'a.png'} is a symlink loop"), (d / "b.png", f"{d / 'b.png'} is a symlink loop"),
        (tmp_path / "x.png", f"{tmp_path / 'x.png'} is a symlink loop")]
    up = TorchUpscaler(random_srresnet(), SMALL)
    outcomes = run_job(up, plan_job([str(d), str(tmp_path / "x.png")], tmp_path / "out"))
    assert [(o.source.name, o.status) for o in outcomes] == [
        ("a.png", "failed"), ("b.png", "failed"), ("x.png", "failed"), ("good.png", "written")]
    plan = plan_job([str(d / "good.png")], tmp_path / "x.png")  # a looping -o is no traceback either
    assert plan.pairs == ((d / "good.png", tmp_path / "x.png"),)


def test_cli_rerun_of_a_finished_batch_exits_0(small_weights: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "a.png", pic(seed=1))
    write_image(tmp_path / "in" / "b.png", pic(seed=2))
    args = ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(small_weights), "--no-tune"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "2 written, 0 left as they were" in first.stderr
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr
    assert "0 written, 2 left as they were (exist; --overwrite replaces them), 0 failed" in second.stderr


def test_cli_non_utf8_names_are_written_and_reported_printably(small_weights: Path, tmp_path: Path) -> None:
    src = os.fsencode(tmp_path / "in")
    os.makedirs(src)
    write_image(os.fsdecode(src + b"/good\xfe.png"), pic(seed=1))
    with open(src + b"/bad\xff.png", "wb") as f:
        f.write(b"not a picture")
    result = runner.invoke(app, ["upscale", os.fsdecode(src), "-o", str(tmp_path / "out"), "--model",
                                 str(small_weights), "--no-tune"])
    assert result.exit_code == 1, result.stderr
    assert os.listdir(os.fsencode(tmp_path / "out")) == [b"good\xfe.png"]  # the same bytes as the input's name
    assert "failed " in result.stderr and "bad\\xff.png: cannot read image" in result.stderr
    assert "\\udcff" not in result.stderr and "\udcff" not in result.stderr  # no surrogate, raw or escaped
    assert "failed " + str(tmp_path / "in" / "bad\\xff.png") in result.stderr  # the name as the message gives it
    assert "1 written, 0 left as they were (exist; --overwrite replaces them), 1 failed" in result.stderr


def test_output_ending_in_a_separator_is_a_folder(small_weights: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", pic(seed=1))
    plan = plan_job([str(tmp_path / "a.png")], f"{tmp_path / 'out.png'}/")
    assert plan.pairs == ((tmp_path / "a.png", tmp_path / "out.png" / "a.png"),)
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", f"{tmp_path / 'res.png'}/", "--model",
                                 str(small_weights), "--no-tune"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "res.png").is_dir() and read_image(tmp_path / "res.png" / "a.png").shape == (36, 44, 3)


def test_run_job_removes_stale_temp_files_of_killed_jobs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, other = out / ".a.png.k3j_x9q2.tmp", out / ".b.png.abcdefgh.tmp", out / "notes.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"half an image")
    hour_ago = time.time() - 2 * 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    write_image(tmp_path / "a.png", pic(seed=1))
    run_job(TorchUpscaler(random_srresnet(), SMALL), plan_job([str(tmp_path / "a.png")], out))
    assert sorted(p.name for p in out.iterdir()) == sorted([fresh.name, other.name, "a.png"])


def test_pair_outputs_is_one_rule_for_paths_and_uris() -> None:
    # URIs (text, compared as given): each source once, an output that is any input (not only its own) refused
    def name_in(folder: str, src: str) -> str:
        return f"{folder}/{src.rsplit('/', 1)[-1]}"

    sources = ["s3://a/x.png", "s3://b/x.png", "s3://a/x.png", "s3://out/y.png", "s3://c/y.png"]
    pairs, refused = pair_outputs(sources, "s3://out", False, name_in, lambda t: t)
    assert pairs == [("s3://a/x.png", "s3://out/x.png")]
    assert refused == [("s3://b/x.png", "s3://out/x.png", "s3://a/x.png has the same output name s3://out/x.png"),
                       ("s3://out/y.png", "s3://out/y.png",
                        "the output would replace the input s3://out/y.png; choose another -o"),
                       ("s3://c/y.png", "s3://out/y.png",
                        "the output would replace the input s3://out/y.png; choose another -o")]
    assert pair_outputs(["s3://a/x.png", "s3://a/x.png"], "s3://o.png", True, name_in, lambda t: t) == (
        [("s3://a/x.png", "s3://o.png")], [])  # one input given twice still names one file
    with pytest.raises(ValueError, match="-o s3://o.png names one image file but 2 inputs"):
        pair_outputs(sources[:2], "s3://o.png", True, name_in, lambda t: t)
