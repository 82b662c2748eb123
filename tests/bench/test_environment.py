"""The environment block: every key present, CPU flags parsed from a real cpuinfo layout; what each CPU class
runs (``sr-deploy info``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sr_deploy.bench.environment import capabilities, cpu_info, environment, machine_slug
from sr_deploy.runtime.select import RANKING
from tests.test_hardware import ALDER_LAKE, SAPPHIRE_RAPIDS, SKYLAKE_SP, ZEN3, ZEN5

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz
flags\t\t: fpu sse4_2 avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz
flags\t\t: fpu sse4_2 avx2
"""


def test_environment_keys() -> None:
    env = environment(ort_intra_op=3)
    assert {"hostname", "os", "python", "cpu", "memory_gb", "gpus", "versions", "torch", "onnxruntime",
            "tensorrt", "threads"} <= set(env)
    assert {"model", "isa", "logical_cores", "physical_cores", "affinity_cores"} <= set(env["cpu"])
    assert env["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert env["threads"]["ort_intra_op"] == 3 and env["threads"]["ort_intra_op_effective"] == 3
    assert env["torch"] == env["versions"]["torch"]
    assert isinstance(env["gpus"], list)


def test_cpu_flags_from_cpuinfo(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    info = cpu_info(tmp_path / "cpuinfo")
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"
    assert {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"} <= set(info["isa"])
    assert "fpu" not in info["isa"]  # only the flags that pick kernels


def test_machine_slug() -> None:
    env = {"cpu": {"model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "logical_cores": 16},
           "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
    assert machine_slug(env) == "intel-xeon-platinum-8480-16c-nvidia-h100-80gb-hbm3"


@pytest.mark.parametrize(("flags", "bf16", "weight_bits", "openvino_runs_tensorrt_layout"), [
    (ZEN3, "emulated", 7, False), (SKYLAKE_SP, "emulated", 7, False), (ALDER_LAKE, "emulated", 8, True),
    (ZEN5, "native (AVX-512 BF16)", 8, True), (SAPPHIRE_RAPIDS, "native (AMX)", 8, True)],
    ids=["zen3", "skylake-sp", "alder-lake", "zen5", "sapphire-rapids"])
def test_capabilities_follow_the_cpu_class(tmp_path: Path, flags: str, bf16: str, weight_bits: int,
                                           openvino_runs_tensorrt_layout: bool) -> None:
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: test cpu\nflags\t\t: {flags}\n")
    caps = capabilities(tmp_path / "cpuinfo")
    assert caps["cpu"]["model"] == "test cpu"
    assert caps["precisions"]["bf16"].startswith(bf16)
    assert caps["int8_weight_bits"] == weight_bits
    assert (caps["precisions"]["int8, tensorrt layout on OpenVINO"] == "runs") is openvino_runs_tensorrt_layout
    openvino = importlib.util.find_spec("openvino") is not None
    on_demand = caps["precisions"]["int8 made from weights on demand"]
    if openvino and openvino_runs_tensorrt_layout:  # symmetric activations: OpenVINO's fastest int8 where VNNI is
        assert on_demand.startswith("tensorrt layout, measured and run on openvino")
    else:
        engine = "openvino" if openvino else "onnxruntime"
        assert on_demand.startswith(f"ort-cpu layout, {weight_bits}-bit weights, measured and run on {engine}")
    routes = {r["route"]: r["unavailable"] for r in caps["routes"]}
    assert len(routes) == len(RANKING)
    assert routes["torch fp32 on cpu (channels_last)"] is None  # on every CPU
    native = bf16.startswith("native")
    assert (routes["torch bf16 on cpu (channels_last)"] is None) is native
    assert (routes["openvino bf16 on cpu (CPU)"] is None) is (openvino and native)
    assert (routes["openvino fp32 on cpu (CPU)"] is None) is openvino
