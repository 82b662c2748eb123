"""The pipeline and the demo command, end to end on a tiny model (real exports, real ORT, real bench)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from sr_deploy.bench.results import load_table
from sr_deploy.cli import app
from sr_deploy.hardware import this_cpu
from sr_deploy.pipeline import MANIFEST, Manifest, PipelineConfig, bench_config, run_demo, run_pipeline, step_key
from tests.helpers import save_tiny_model

EXPORT_STEPS = ["export fp32", "export fp16", "export int8 (ort-cpu)", "export int8 (tensorrt)"]


#: the tests that use :func:`demo_run`: one pytest-xdist group, so the module fixture runs the demo once per test run
#: (with ``--dist loadgroup``), not once on each worker that gets one of them
demo_group = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """``sr-deploy demo --model TINY --out OUT`` once: (weights, out, command output)."""
    root = tmp_path_factory.mktemp("demo")
    weights = save_tiny_model(root / "tiny.safetensors")
    out = root / "out"
    result = CliRunner().invoke(app, ["demo", "--model", str(weights), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return weights, out, result.output


@demo_group
def test_demo_end_to_end(demo_run: tuple[Path, Path, str]) -> None:
    _, out, output = demo_run
    report = out / "bench" / "report.md"
    assert output.strip().splitlines()[-1] == str(report) and report.is_file()
    for name in ("model.fp32.onnx", "model.fp16.onnx", "model.int8-ort.onnx", "model.int8-trt.onnx", MANIFEST):
        assert (out / name).is_file(), name
    variants = load_table(out / "bench", "variants")
    ok = set(variants.filter(pl.col("status") == "ok")["variant"])
    assert {"torch-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"} <= ok
    parity = load_table(out / "bench", "parity").filter(pl.col("variant").str.starts_with("onnxruntime"))
    assert parity["passed"].all(), parity
    text = report.read_text()
    assert "onnxruntime-int8" in text and "![side-by-side crop](plots/crops.png)" in text
    assert "export int8 (ort-cpu)" in output and "bench" in output  # the summary table
    # what each step took, and where: the demo's time on this CPU class is in its manifest and its summary
    steps = json.loads((out / MANIFEST).read_text())["steps"]
    cpu = this_cpu()
    assert set(steps) == {*EXPORT_STEPS, "bench", "report"}
    assert all(e["seconds"] > 0 and e["machine"]["isa_class"] == cpu.isa and e["machine"]["cpu"] == cpu.model
               for e in steps.values())
    total = sum(e["seconds"] for e in steps.values())
    printed = re.search(rf"(\d+\.\d) s of steps on {re.escape(cpu.model)} \({cpu.isa}\)", " ".join(output.split()))
    assert printed and abs(float(printed.group(1)) - total) < 0.5, output


@demo_group
def test_second_call_skips_every_step(demo_run: tuple[Path, Path, str]) -> None:
    weights, out, _ = demo_run
    before = (out / MANIFEST).read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")}
    results, report = run_demo(out, str(weights), log=lambda _m: None)
    done = {r.step: r.status for r in results}
    assert all(done[s] == "skipped" for s in [*EXPORT_STEPS, "bench", "report"]), done
    assert done.get("tensorrt engines") in (None, "skipped", "not available", "done")
    assert (out / MANIFEST).read_text() == before
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")} == stamps
    assert report.is_file()


@demo_group
def test_a_damaged_output_is_redone(demo_run: tuple[Path, Path, str]) -> None:
    weights, out, _ = demo_run
    (out / "model.fp16.onnx").write_bytes(b"not an onnx file")
    results, _ = run_demo(out, str(weights), log=lambda _m: None)
    done = {r.step: r.status for r in results}
    assert done["export fp16"] == "done" and done["export fp32"] == "skipped"
    assert done["bench"] == "skipped"  # the re-exported fp16 file is identical, so its key is too
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["steps"]["export fp16"]["outputs"].keys() == {"model.fp16.onnx"}


def test_a_damaged_manifest_is_said_and_costs_a_rebuild(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    said: list[str] = []
    manifest = Manifest(tmp_path, said.append)
    assert manifest.steps == {} and said == [f"{tmp_path / MANIFEST} cannot be read: every step runs again (and "
                                             "rewrites it)"]


def test_step_key_follows_inputs_and_options(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    assert step_key([a], {"x": 1}) == step_key([a], {"x": 1})
    assert step_key([a], {"x": 1}) != step_key([b], {"x": 1})
    assert step_key([a], {"x": 1}) != step_key([a], {"x": 2})


def test_the_bench_runs_tensorrt_only_for_its_target(tmp_path: Path) -> None:
    files = [tmp_path / "m.fp32.onnx"]
    cpu = bench_config(PipelineConfig(model="m", targets=("onnxruntime",)), tmp_path / "m.safetensors", files, [])
    assert cpu.backends == ("torch", "onnxruntime", "openvino")  # it listed three tensorrt variants as not available
    both = bench_config(PipelineConfig(model="m"), tmp_path / "m.safetensors", files, [])
    assert "tensorrt" in both.backends
    chosen = PipelineConfig(model="m", targets=("onnxruntime",), bench={"backends": ("torch", "tensorrt")})
    assert bench_config(chosen, tmp_path / "m.safetensors", files, []).backends == ("torch", "tensorrt")


def test_bad_targets_and_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown targets"):
        PipelineConfig(model="m", targets=("openvino",))
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        run_pipeline(PipelineConfig(model="no-such-model"), tmp_path)
    result = CliRunner().invoke(app, ["pipeline", "--model", "m", "--out", str(tmp_path), "--targets", "x"])
    assert result.exit_code == 2 and "unknown targets" in result.output


def test_pipeline_takes_a_third_party_checkpoint(tmp_path: Path) -> None:
    from tests.helpers import save_third_party

    weights = save_third_party("compact-x4", tmp_path / "compact.pth")  # a Real-ESRGAN Compact state dict
    config = PipelineConfig(model=str(weights), targets=("onnxruntime",), calib_images=2, max_psnr_drop=0.1,
                            bench={"backends": ("torch", "onnxruntime"), "sizes": ((16, 16),), "batches": (1,),
                                   "warmup": 1, "repeats": 2, "max_attempts": 1, "budget_s": 1.0,
                                   "max_images": 1, "tiling_sizes": ()})
    results = run_pipeline(config, tmp_path / "out", log=lambda _m: None)
    assert {r.step: r.status for r in results}["export int8 (ort-cpu)"] == "done"
    variants = load_table(tmp_path / "out" / "bench", "variants")
    ok = set(variants.filter(pl.col("status") == "ok")["variant"])
    assert {"torch-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"} <= ok
    parity = load_table(tmp_path / "out" / "bench", "parity").filter(pl.col("variant") == "onnxruntime-fp32")
    assert parity["passed"].all()
    # the exported file says what it came from: the architecture and the checkpoint's sha256
    from sr_deploy.artifacts import sha256_file
    from sr_deploy.backends import onnx_metadata

    desc = json.loads(onnx_metadata.file_props(tmp_path / "out" / "model.fp32.onnx")[onnx_metadata.DESCRIPTOR])
    assert desc["source_sha256"] == sha256_file(weights) and "compact" in json.dumps(desc).lower()
