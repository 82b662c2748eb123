"""Backend selection: every branch of the pure decision, the ranking data, and real loads on this machine."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.backends.trt_metadata import EngineMetadataError
from sr_deploy.errors import ExportError
from sr_deploy.export.onnx import export_onnx
from sr_deploy.hardware import cpu_has_bf16
from sr_deploy.models.zoo import RELEASED_DIR
from sr_deploy.runtime import load, load_selected
from sr_deploy.runtime.images import upscale_image
from sr_deploy.runtime.select import (
    CROSS_CLASS_DROPS,
    DEFAULT_MODEL,
    RANKING,
    RANKING_SOURCE,
    Artifact,
    Facts,
    decide,
    identify,
    int8_expectation,
    machine_facts,
)
from sr_deploy.runtime.tune import tune
from sr_deploy.scoring import evaluate
from tests.helpers import SMALL, random_srresnet

NO_CUDA = "torch sees no CUDA device"
NO_TRT = "TensorRT is not available: the tensorrt Python package is not installed"
NO_OV = "OpenVINO is not installed: pip install 'sr-deploy[openvino]'"
CPU_BF16 = Facts(NO_CUDA, NO_TRT, None, ("CPUExecutionProvider",), cpu_bf16=True, openvino=NO_OV)
CPU_PLAIN = Facts(NO_CUDA, NO_TRT, None, ("CPUExecutionProvider",), cpu_bf16=False, openvino=NO_OV)
NO_ORT = Facts(NO_CUDA, NO_TRT, "onnxruntime is not installed", (), cpu_bf16=False, openvino=NO_OV)
GPU_ALL = Facts(None, None, None, ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), True,
                openvino=NO_OV)
GPU_NO_TRT = Facts(None, NO_TRT, None, ("CUDAExecutionProvider", "CPUExecutionProvider"), False, openvino=NO_OV)
#: OpenVINO installed: an AVX-512 BF16 CPU, and an AVX2-only CPU (no VNNI, no native bf16)
CPU_OV = Facts(NO_CUDA, NO_TRT, None, ("CPUExecutionProvider",), True, openvino=None, cpu_vnni=True,
               cpu_isa="avx512_bf16")
AVX2_OV = Facts(NO_CUDA, NO_TRT, None, ("CPUExecutionProvider",), False, openvino=None, cpu_vnni=False,
                cpu_isa="avx2")

WEIGHTS = Artifact(Path("m.safetensors"), "weights")
ONNX32 = Artifact(Path("m.onnx"), "onnx", "fp32")
ONNX16 = Artifact(Path("m-fp16.onnx"), "onnx", "fp16")
ONNX8 = Artifact(Path("m-int8.onnx"), "onnx", "int8")
ENGINE16 = Artifact(Path("m.engine"), "engine", "fp16")
ONNX8_TRT_LAYOUT = Artifact(Path("m-int8-trt.onnx"), "onnx", "int8", layout="tensorrt", validated_isa="avx2")
ONNX8_VNNI = Artifact(Path("m-int8-ort.onnx"), "onnx", "int8", layout="ort-cpu", validated_isa="avx512_vnni",
                      validated_vnni=True)


def test_ranking_is_data_with_its_source() -> None:
    devices = [r.device for r in RANKING]
    assert devices == sorted(devices, key=lambda d: d != "cuda")  # every GPU route before every CPU route
    measured = [r.speedup for r in RANKING if r.speedup is not None]
    assert measured == sorted(measured, reverse=True) == [2.86, 2.29, 1.85, 1.65, 1.40, 1.36, 1.25, 1.21, 0.93]
    for value in measured:
        assert f"{value:.2f}x" in RANKING_SOURCE
    keys = [(r.backend, r.device, r.precision, r.variant) for r in RANKING]
    assert len(keys) == len(set(keys))
    gpu_fp16 = [r.backend + r.variant for r in RANKING if r.device == "cuda" and r.precision == "fp16"]
    assert gpu_fp16 == ["tensorrt", "onnxruntimeTensorrtExecutionProvider", "onnxruntimeCUDAExecutionProvider",
                        "torchchannels_last+cudagraph"]


@pytest.mark.parametrize(
    ("artifact", "facts", "request_", "expected", "in_reason"),
    [
        (WEIGHTS, CPU_BF16, {}, ("torch", "cpu", "fp32", "channels_last"), "1.25x"),
        (WEIGHTS, CPU_BF16, {"precision": "bf16"}, ("torch", "cpu", "bf16", "channels_last"), "2.29x"),
        (ONNX8, CPU_PLAIN, {}, ("onnxruntime", "cpu", "int8", "CPUExecutionProvider"), "1.65x"),
        (ONNX32, CPU_PLAIN, {"backend": "onnxruntime"}, ("onnxruntime", "cpu", "fp32", "CPUExecutionProvider"),
         "skipped: onnxruntime fp32 on cuda (Tensorrt) (torch sees no CUDA device)"),
        (ONNX16, CPU_PLAIN, {}, ("onnxruntime", "cpu", "fp16", "CPUExecutionProvider"), "fp16 route"),
        (WEIGHTS, GPU_ALL, {}, ("torch", "cuda", "fp32", "channels_last+cudagraph"),
         "faster here: tensorrt fp32 on cuda, backend tensorrt makes its fp32 engine from the weights on first use"),
        (WEIGHTS, GPU_ALL, {"precision": "fp16"}, ("torch", "cuda", "fp16", "channels_last+cudagraph"),
         "faster here: tensorrt fp16"),
        (ONNX16, GPU_ALL, {}, ("onnxruntime", "cuda", "fp16", "TensorrtExecutionProvider"), "fastest fp16"),
        (ENGINE16, GPU_ALL, {"backend": "tensorrt"}, ("tensorrt", "cuda", "fp16", ""), "fastest fp16"),
        (ONNX32, GPU_NO_TRT, {}, ("onnxruntime", "cuda", "fp32", "CUDAExecutionProvider"),
         "onnxruntime has no TensorrtExecutionProvider"),
        (ONNX8, GPU_NO_TRT, {}, ("onnxruntime", "cpu", "int8", "CPUExecutionProvider"), "skipped"),
        (ONNX32, GPU_ALL, {"device": "cpu"}, ("onnxruntime", "cpu", "fp32", "CPUExecutionProvider"), "fastest"),
        (WEIGHTS, GPU_ALL, {"device": "cpu", "precision": "bf16"}, ("torch", "cpu", "bf16", "channels_last"),
         "2.29x"),
        (WEIGHTS, GPU_ALL, {"device": "cuda:1", "precision": "bf16"},
         ("torch", "cuda", "bf16", "channels_last+cudagraph"), "bf16"),
        (ONNX32, CPU_OV, {}, ("openvino", "cpu", "fp32", "CPU"), "fastest fp32 route for this onnx file"),
        (ONNX32, CPU_OV, {"precision": "bf16"}, ("openvino", "cpu", "bf16", "CPU"), "fastest bf16"),
        (ONNX32, CPU_OV, {"backend": "onnxruntime"}, ("onnxruntime", "cpu", "fp32", "CPUExecutionProvider"),
         "fastest"),
        (ONNX16, AVX2_OV, {}, ("openvino", "cpu", "fp16", "CPU"), "fastest fp16"),
        (ONNX8_TRT_LAYOUT, AVX2_OV, {}, ("onnxruntime", "cpu", "int8", "CPUExecutionProvider"),
         "; openvino int8 on cpu (CPU) (OpenVINO on symmetric int8 activations"),
        (ONNX8_TRT_LAYOUT, CPU_OV, {}, ("openvino", "cpu", "int8", "CPU"), "validated on a avx2 CPU (Y-PSNR drop not "
         "recorded), this one is avx512_bf16: expect its recorded drop: its s8s8 arithmetic"),
        (ONNX8_VNNI, AVX2_OV, {}, ("openvino", "cpu", "int8", "CPU"), "WARNING: this int8 model was validated on a "
         "avx512_vnni CPU (Y-PSNR drop not recorded), this one is avx2: expect about 2.0 dB more loss here"),
    ],
)
def test_decisions(artifact: Artifact, facts: Facts, request_: dict[str, str], expected: tuple[str, ...],
                   in_reason: str) -> None:
    sel = decide(artifact, facts, **request_)
    assert (sel.route.backend, sel.route.device, sel.route.precision, sel.route.variant) == expected
    assert in_reason in sel.reason
    assert sel.candidates[0] == sel.route and all(facts.unavailable(r, artifact) is None for r in sel.candidates)


@pytest.mark.parametrize(
    ("artifact", "facts", "request_", "error", "message"),
    [
        (WEIGHTS, CPU_PLAIN, {"precision": "bf16"}, BackendUnavailable, "no AVX-512 BF16"),
        (WEIGHTS, CPU_BF16, {"precision": "int8"}, BackendUnavailable,
         r"this machine can run onnxruntime int8 on cpu \(CPU\): export it first with `sr-deploy export int8"),
        (WEIGHTS, CPU_BF16, {"precision": "fp16"}, BackendUnavailable,
         "torch fp16 on cuda .*: torch sees no CUDA device; this machine can run onnxruntime fp16 on cpu"),
        (ONNX32, CPU_BF16, {"precision": "int8"}, ValueError,
         "m.onnx holds an ONNX graph in fp32; for int8: export it first"),
        (ONNX32, CPU_BF16, {"precision": "bf16"}, BackendUnavailable,
         "openvino bf16 on cpu .CPU.: OpenVINO is not installed.*this machine can run torch bf16 on cpu "
         ".channels_last.: run from the .safetensors/.pt weights"),
        (ONNX32, AVX2_OV, {"precision": "bf16"}, BackendUnavailable, "openvino bf16 on cpu .CPU.: this CPU has no "
         "AVX-512 BF16 or AMX"),
        (ONNX16, CPU_OV, {"precision": "bf16"}, ValueError, "m-fp16.onnx holds an ONNX graph in fp16; for bf16"),
        (ONNX32, CPU_BF16, {"backend": "torch"}, BackendUnavailable,
         "m.onnx holds an ONNX graph; the torch backend does not run those in fp32; this machine can run torch "
         "fp32 on cpu .*run from the .safetensors"),
        (WEIGHTS, CPU_BF16, {"backend": "onnxruntime"}, BackendUnavailable, "`sr-deploy export onnx"),
        (ONNX32, CPU_BF16, {"backend": "tensorrt"}, BackendUnavailable, "sr-deploy build"),
        (WEIGHTS, CPU_BF16, {"backend": "torch", "precision": "int8"}, BackendUnavailable,
         "int8 is not offered by torch on any device .offered: bf16, fp16, fp32"),
        (ENGINE16, CPU_BF16, {}, BackendUnavailable, "TensorRT is not available: the tensorrt Python package"),
        (ENGINE16, GPU_NO_TRT, {"backend": "tensorrt"}, BackendUnavailable, "tensorrt fp16 on cuda: TensorRT is not"),
        (ONNX32, NO_ORT, {}, BackendUnavailable, "onnxruntime is not installed"),
        (ONNX32, CPU_BF16, {"device": "cuda"}, BackendUnavailable, "torch sees no CUDA device"),
        (WEIGHTS, CPU_BF16, {"backend": "magic"}, ValueError, "unknown backend 'magic'"),
        (WEIGHTS, CPU_BF16, {"precision": "fp8"}, ValueError, "unknown precision 'fp8'"),
        (WEIGHTS, CPU_BF16, {"device": "tpu"}, ValueError, "unknown device 'tpu'"),
    ],
)
def test_refusals_say_what_is_missing(artifact: Artifact, facts: Facts, request_: dict[str, str],
                                      error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decide(artifact, facts, **request_)


def test_gpu_facts_without_a_gpu_are_never_silently_cpu() -> None:
    with pytest.raises(BackendUnavailable, match=re.escape(NO_TRT)):
        decide(ENGINE16, CPU_BF16, backend="tensorrt")
    with pytest.raises(BackendUnavailable, match=re.escape(NO_CUDA)):
        decide(WEIGHTS, CPU_BF16, device="cuda")


def test_machine_facts_are_this_machine() -> None:
    facts = machine_facts()
    assert facts.cpu_bf16 == cpu_has_bf16()
    assert (facts.cuda is None) == torch.cuda.is_available()
    assert "CPUExecutionProvider" in facts.ort_providers and facts.onnxruntime is None
    if facts.cuda is not None:
        assert facts.tensorrt is not None  # TensorRT cannot work without a GPU


def test_real_auto_load_of_weights_on_this_machine(small_weights: Path) -> None:
    up, sel = load_selected(small_weights)
    assert isinstance(up, TorchUpscaler) and sel.route.backend == "torch" and sel.route.precision == "fp32"
    assert up.precision == "fp32" and up.channels_last and up.scale == 4 and sel.reason
    x = np.random.default_rng(0).random((1, 3, 12, 9), dtype=np.float32)
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x)
    assert np.abs(up.run(x) - reference).max() <= 1e-5
    if cpu_has_bf16():
        assert load(small_weights, precision="bf16").precision == "bf16"
    else:
        with pytest.raises(BackendUnavailable, match="no AVX-512 BF16"):
            load(small_weights, precision="bf16")


def test_real_load_of_onnx_and_explicit_backends(small_weights: Path, small_onnx: Path) -> None:
    up, sel = load_selected(small_onnx)
    auto = "onnxruntime" if machine_facts().openvino else "openvino"  # the static order: OpenVINO first on a CPU
    assert up.name == f"{auto}-fp32[CPU]" and up.precision == "fp32" and f"{auto} fp32" in sel.reason
    ort, sel = load_selected(small_onnx, backend="onnxruntime")
    assert isinstance(ort, OrtUpscaler) and np.abs(up.run(np.ones((1, 3, 8, 8), np.float32))
                                                   - ort.run(np.ones((1, 3, 8, 8), np.float32))).max() <= 1e-4
    assert isinstance(load(small_weights, backend="torch"), TorchUpscaler)
    with pytest.raises(BackendUnavailable, match="export onnx"):  # conversion on demand: tests/runtime/test_convert
        load(small_weights, backend="onnxruntime", convert=False)
    with pytest.raises(BackendUnavailable, match="run from the .safetensors"):
        load(small_onnx, backend="torch")


def test_identify_reads_the_file_kind_and_precision(small_weights: Path, small_onnx: Path, tmp_path: Path) -> None:
    assert identify(small_weights) == Artifact(small_weights, "weights")
    assert identify(small_onnx) == Artifact(small_onnx, "onnx", "fp32")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(EngineMetadataError, match="m.engine.json is missing"):
        identify(engine)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.onnx is not a readable ONNX file"):
        identify(bad)
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped model"):
        identify(tmp_path / "missing.safetensors")


@pytest.mark.skipif((RELEASED_DIR / f"{DEFAULT_MODEL}.safetensors").is_file(), reason="the default model is shipped")
def test_no_model_without_the_shipped_default_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no model given and the shipped default srresnet-x4 is not installed"):
        load()


def test_bicubic_baseline_still_loads() -> None:
    up = load("bicubic", scale=2)
    assert up.name == "bicubic" and up.run(np.zeros((1, 3, 4, 4), np.float32)).shape == (1, 3, 8, 8)
    same, selection = load_selected("bicubic", scale=3)  # load_selected takes what load takes
    assert same.scale == 3 and same.descriptor.architecture == "bicubic" and "baseline" in selection.reason
    with pytest.raises(ValueError, match="bicubic scale must be an integer >= 2, got 0"):
        load("bicubic", scale=0)


def test_the_api_checks_what_it_is_given(small_weights: Path, tmp_path: Path) -> None:
    """Each was silently ignored, or failed deep inside with an IndexError or numpy's message."""
    assert load(small_weights, backend="torch", scale=4).scale == 4
    with pytest.raises(ValueError, match=r"small-x4.safetensors is a x4 model, not x2"):
        load(small_weights, backend="torch", scale=2)
    with pytest.raises(ValueError, match=r"tune_shape must be an \(N, 3, H, W\) input shape"):
        load_selected(small_weights, tune_shape=(16, 16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape must be an \(N, 3, H, W\) input shape.*\(1, 3, 0, 16\)"):
        tune(small_weights, shape=(1, 3, 0, 16))
    with pytest.raises(ValueError, match="budget_s must be >= 0 seconds"):
        tune(small_weights, budget_s=-1)
    with load(small_weights, backend="torch") as up, pytest.raises(TypeError, match="tile must be a whole number"):
        upscale_image(up, np.zeros((8, 8, 3), np.uint8), tile=3.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="images must be a list of image paths"):
        evaluate(load("bicubic"), str(tmp_path / "a.png"))  # it iterated over the characters
    with pytest.raises(ExportError, match="descriptor is for an nn.Module"):
        export_onnx(small_weights, tmp_path / "m.onnx", descriptor=SMALL)
    assert load.__doc__ and "fastest route" in load.__doc__
    assert "precision" in inspect.signature(load).parameters  # help() shows the parameters, not (*args, **kwargs)


def _int8(layout: str, isa: str, vnni: bool, seven_bit: bool = False) -> Artifact:
    return Artifact(Path("m-int8.onnx"), "onnx", "int8", layout, isa, vnni, seven_bit, 0.12)


@pytest.mark.parametrize(
    ("artifact", "facts", "expected"),
    [
        (_int8("ort-cpu", "avx512_bf16", True), CPU_OV, None),  # validated on this class: nothing to say
        (ONNX8, AVX2_OV, None),  # nothing recorded (an int8 file from elsewhere)
        (_int8("ort-cpu", "avx512_vnni", True), AVX2_OV, "WARNING: this int8 model was validated on a avx512_vnni CPU "
         "(Y-PSNR drop 0.120 dB), this one is avx2: expect about 2.0 dB more loss here: 8-bit weights with uint8 "
         "activations saturate on CPUs without VNNI (shipped srresnet-x4, one file: 2.090 dB on AVX2, 0.113 dB"),
        (_int8("ort-cpu", "avx512", False), AVX2_OV, "NOTE: this int8 model was validated on a avx512 CPU (Y-PSNR drop "
         "0.120 dB), this one is avx2: expect its recorded drop: its 8-bit u8s8 arithmetic is the same on both classes "
         "(neither has VNNI: both saturate alike"),  # both saturate
        (_int8("ort-cpu", "avx2", False), CPU_OV, "this one is avx512_bf16: expect at most its recorded drop"),
        (_int8("ort-cpu", "avx512_vnni", True, seven_bit=True), AVX2_OV, "expect its recorded drop: its 7-bit u8s8 "
         "arithmetic accumulates exactly in int32 on both classes (shipped srresnet-x4, one file: 0.122 dB on AVX2, "
         "0.122 dB on AVX-512 VNNI"),
        (_int8("tensorrt", "avx512_bf16", True), AVX2_OV, "expect its recorded drop: its s8s8 arithmetic"),
        (_int8("ort-cpu", "amx", True), CPU_OV, "expect its recorded drop: its 8-bit u8s8 arithmetic is the same on "
         "both classes (both have VNNI"),  # VNNI both
        (Artifact(Path("m-int8.onnx"), "onnx", "int8", "ort-cpu", "avx512_vnni", None), CPU_OV,
         "arithmetic depends on VNNI, which the file does not record for its CPU"),
    ],
)
def test_int8_on_another_cpu_class_says_what_accuracy_to_expect(artifact: Artifact, facts: Facts,
                                                                 expected: str | None) -> None:
    said = int8_expectation(artifact, facts)
    if expected is None:
        assert said is None
    else:
        assert said is not None and expected in said and "re-export it" in said  # always how to measure it here


def test_cross_class_figures_are_the_committed_measurements() -> None:
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    avx2 = (results / "qemu-epyc-milan-emulated-on-amd-epyc-2c" / "int8_calibration.md").read_text()
    vnni = (results / "amd-epyc-2c" / "int8_calibration.md").read_text()
    assert "(avx2, VNNI no)" in avx2 and "VNNI yes" in vnni
    rows = {"8-bit u8s8": "| onnxruntime | ort-cpu | entropy | 8bit | {:.3f} |",
            "7-bit u8s8": "| onnxruntime | ort-cpu | entropy | 7bit | {:.3f} |",
            "s8s8": "| onnxruntime | tensorrt | entropy | 8bit | {:.3f} |"}
    assert set(CROSS_CLASS_DROPS) == set(rows)
    for kind, (on_avx2, on_vnni) in CROSS_CLASS_DROPS.items():
        assert rows[kind].format(on_avx2) in avx2 and rows[kind].format(on_vnni) in vnni


def test_int8_from_another_cpu_class_on_this_machine() -> None:
    # the real facts of this CPU (under tests/emulate_cpu.sh avx2: an AVX2 CPU without VNNI, where the WARNING is due)
    facts = machine_facts()
    other = "avx2" if facts.cpu_vnni else "avx512_vnni"
    artifact = Artifact(Path("m-int8.onnx"), "onnx", "int8", "ort-cpu", other, other != "avx2", False, 0.11)
    reason = decide(artifact, facts, device="cpu").reason
    assert f"validated on a {other} CPU (Y-PSNR drop 0.110 dB), this one is {facts.cpu_isa}" in reason
    assert ("WARNING" in reason) == (not facts.cpu_vnni)  # 8-bit u8s8 from a VNNI CPU meets one without
