"""OpenVINO backend on the CPU: parity with ONNX Runtime on the same ONNX files, precisions, errors, close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import compare, tolerance_for
from sr_deploy.errors import ModelFileError
from sr_deploy.hardware import cpu_has_bf16
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled
from tests.helpers import SMALL

pytest.importorskip("openvino", reason="OpenVINO is not installed (CI installs the openvino extra)")

from sr_deploy.backends.openvino import OvUpscaler  # noqa: E402


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.random(shape, dtype=np.float32) for shape in [(1, 3, 17, 23), (3, 3, 8, 8), (2, 3, 31, 12)]]


def test_openvino_fp32_equals_onnx_runtime_on_the_same_file(small_onnx: Path, tmp_path: Path) -> None:
    with OvUpscaler(small_onnx, cache_dir=tmp_path / "cache") as ov, OrtUpscaler(small_onnx) as ort:
        assert (ov.name, ov.device, ov.precision, ov.descriptor) == ("openvino-fp32[CPU]", "cpu", "fp32", SMALL)
        outs = [ov.run(b) for b in batches()]  # dynamic batch and size: no recompilation per shape
        result = compare(outs, [ort.run(b) for b in batches()], tolerance_for("fp32"))
        assert result.passed and result.max_abs <= 1e-4, result.summary()
        x = batches()[0][0]
        assert np.abs(upscale_tiled(ov, x, plan_tiles(ov, *x.shape[1:], tile=6)) - outs[0][0]).max() <= 1e-5
    assert any((tmp_path / "cache").iterdir())  # the compiled model was cached
    with pytest.raises(RuntimeError, match="is closed"):
        ov.run(batches()[0])


def test_openvino_bf16_from_the_fp32_file_only_with_native_bf16(small_onnx: Path) -> None:
    if not cpu_has_bf16():
        from sr_deploy.errors import BackendUnavailable

        with pytest.raises(BackendUnavailable, match="emulated"):
            OvUpscaler(small_onnx, precision="bf16")
        return
    with OvUpscaler(small_onnx, precision="bf16") as ov, OrtUpscaler(small_onnx) as ort:
        assert ov.name == "openvino-bf16[CPU]"
        assert compare([ov.run(b) for b in batches()], [ort.run(b) for b in batches()], tolerance_for("bf16")).passed


def test_openvino_runs_int8_qdq_files_close_to_onnx_runtime(small_onnx: Path, tmp_path: Path) -> None:
    from sr_deploy.export.int8 import export_int8

    path = export_int8(small_onnx, tmp_path / "m.int8.onnx", target="ort-cpu", num_images=2, max_plain_drop=99).path
    with OvUpscaler(path) as ov, OrtUpscaler(path) as ort:
        assert ov.precision == "int8"
        outs, refs = [ov.run(b) for b in batches()], [ort.run(b) for b in batches()]
        assert compare(outs, refs, tolerance_for("int8")).passed  # two int8 engines agree to int8 parity


def test_openvino_refuses_what_it_cannot_run(small_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"runs .* \(fp32\) in fp32, bf16, not int8"):
        OvUpscaler(small_onnx, precision="int8")
    model = onnx.load(str(small_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match="bare.onnx has no sr-deploy metadata"):
        OvUpscaler(tmp_path / "bare.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx does not exist"):
        OvUpscaler(tmp_path / "missing.onnx")


#: /proc/cpuinfo flags of three CPU classes: AVX2 only (Zen 3), AVX-512 VNNI (Cascade Lake), AMX (Sapphire Rapids)
_AVX2 = "fpu sse4_2 avx avx2 fma f16c bmi2"
_AVX512_VNNI = _AVX2 + " avx512f avx512bw avx512vl avx512_vnni"
_AMX = _AVX512_VNNI + " avx512_bf16 amx_bf16 amx_tile amx_int8"


@pytest.mark.parametrize(("flags", "refused"), [
    (_AVX2, True), (_AVX512_VNNI, False), (_AMX, False), (_AVX2 + " avx_vnni", False), ("", True)])
def test_symmetric_int8_refused_on_cpus_without_vnni(flags: str, refused: bool) -> None:
    from sr_deploy.backends.openvino import symmetric_int8_refusal

    reason = symmetric_int8_refusal(flags.split())
    assert (reason is not None) == refused
    if reason:
        assert "without VNNI" in reason and "target='ort-cpu'" in reason
        assert ("of the avx2 class" if flags else "of the baseline class") in reason


@pytest.mark.parametrize(("zero_point_type", "on_weights_only", "symmetric"), [
    (onnx.TensorProto.INT8, False, True), (onnx.TensorProto.UINT8, False, False), (onnx.TensorProto.INT8, True, False)])
def test_symmetric_int8_activations_read_from_the_graph(zero_point_type: int, on_weights_only: bool,
                                                        symmetric: bool) -> None:
    from onnx import helper

    from sr_deploy.backends.openvino import symmetric_int8_activations

    quantized = "w" if on_weights_only else "x"  # ModelOpt quantizes float weights with a Q node too
    inits = [helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [0.5]),
             helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("z", zero_point_type, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", [quantized, "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]), helper.make_node("Mul", ["x", "dq"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], inits)
    assert symmetric_int8_activations(helper.make_model(graph)) == symmetric
