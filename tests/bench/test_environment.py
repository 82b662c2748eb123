"""The environment block: every key present, CPU flags parsed from a real cpuinfo layout."""

from __future__ import annotations

from pathlib import Path

import torch

from sr_deploy.bench.environment import cpu_info, environment, machine_slug

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
