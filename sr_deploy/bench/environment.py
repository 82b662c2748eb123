"""The environment block stored with every benchmark result: what machine and software made it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
from typing import Any

import psutil

from sr_deploy.artifacts import library_versions
from sr_deploy.backends.openvino import symmetric_int8_refusal_for
from sr_deploy.export.int8 import default_reduce_range
from sr_deploy.hardware import read_cpu
from sr_deploy.runtime.convert import cache_root, cpu_int8_engine, int8_layout_for
from sr_deploy.runtime.select import RANKING, machine_facts

#: CPU flags that decide which kernels run (AVX-512, bf16, VNNI int8, AMX tiles).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu_info(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model name, instruction-set class, ISA flags of interest (present ones only) and core counts."""
    cpu = read_cpu(cpuinfo)
    return {
        "model": cpu.model,
        "isa_class": cpu.isa,
        "isa": [f for f in ISA_FLAGS if f in cpu.flags],
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def gpu_info() -> list[dict[str, Any]]:
    """Name, total memory (MiB) and driver of each NVIDIA GPU via NVML; empty without one (or NVML)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, no driver: no GPU to report
        return []
    gpus = []
    driver = pynvml.nvmlSystemGetDriverVersion()
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        name = pynvml.nvmlDeviceGetName(handle)
        gpus.append({
            "index": i,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20,
            "driver": driver.decode() if isinstance(driver, bytes) else str(driver),
        })
    return gpus


def thread_counts(ort_intra_op: int = 0) -> dict[str, Any]:
    """Threads the benchmarks ran with: torch intra/inter-op, ORT intra-op (0 = ORT's default, one
    per physical core) and the OpenMP/MKL environment variables that override them."""
    import torch

    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return {
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "ort_intra_op": ort_intra_op,
        "ort_intra_op_effective": ort_intra_op or psutil.cpu_count(logical=False),
        "env": env,
    }


def environment(ort_intra_op: int = 0) -> dict[str, Any]:
    """The whole block: host, OS, Python, CPU, GPUs, library versions (torch, onnxruntime, TensorRT ...)
    and thread counts. Every key is always present (None / empty when not applicable)."""
    versions = library_versions()
    with contextlib.suppress(ImportError):
        import torch

        versions["torch_cuda"] = str(torch.version.cuda) if torch.version.cuda else "none"
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "gpus": gpu_info(),
        "versions": versions,
        "tensorrt": versions.get("tensorrt"),
        "openvino": versions.get("openvino"),
        "onnxruntime": versions.get("onnxruntime") or versions.get("onnxruntime-gpu"),
        "torch": versions.get("torch"),
        "threads": thread_counts(ort_intra_op),
    }


def machine_slug(env: dict[str, Any]) -> str:
    """A folder name for results of this machine: CPU model and logical cores, plus the first GPU,
    e.g. ``intel-xeon-processor-2c`` or ``amd-epyc-7763-64-core-processor-16c-nvidia-h100-80gb-hbm3``."""
    def slug(text: str) -> str:
        text = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$", "", text.lower())
        return re.sub(r"[^a-z0-9]+", "-", text).strip("-")

    cpu = env.get("cpu", {})
    parts = [slug(str(cpu.get("model") or "cpu")), f"{cpu.get('logical_cores')}c"]
    if env.get("gpus"):
        parts.append(slug(env["gpus"][0]["name"]))
    return "-".join(p for p in parts if p)


def capabilities(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """What this machine can run and how well (``sr-deploy info``): the CPU (:func:`cpu_info`) and GPUs, the
    precision facts that follow from the CPU's instruction set (bf16 native or emulated; whether uint8 x int8
    products saturate, so that ``export int8`` chooses 7-bit weights for the ort-cpu layout: ``int8_weight_bits``;
    whether OpenVINO runs the tensorrt Q/DQ layout; the layout and engine of int8 made from weights on demand),
    every route of the ranking with why it cannot run here (None: it can), library versions and the cache folder.
    ``cpuinfo``: the CPU's ``/proc/cpuinfo`` (another CPU's file shows what that CPU would run with this machine's
    libraries and GPUs)."""
    cpu = read_cpu(cpuinfo)
    facts = dataclasses.replace(machine_facts(), cpu_bf16=cpu.bf16, cpu_vnni=cpu.vnni, cpu_isa=cpu.isa)
    bf16 = ("native (AMX)" if "amx_bf16" in cpu.flags else "native (AVX-512 BF16)") if cpu.bf16 else (
        "emulated (no AVX-512 BF16 or AMX): slower than fp32; bench, demo and auto skip it")
    seven_bit = default_reduce_range("ort-cpu", cpu)
    u8s8 = ("uint8 x int8 products saturate (no VNNI): export int8 gives the ort-cpu layout 7-bit weights"
            if seven_bit else "uint8 x int8 products accumulate exactly (VNNI): export int8 keeps 8-bit weights")
    engine = cpu_int8_engine()
    layout = int8_layout_for(cpu.vnni, engine == "openvino")
    width = f", {7 if seven_bit else 8}-bit weights" if layout == "ort-cpu" else ""
    on_demand = (f"{layout} layout{width}, measured and run on {engine} (backend onnxruntime: ort-cpu layout on "
                 "onnxruntime)")
    return {
        "cpu": cpu_info(cpuinfo),
        "gpus": gpu_info(),
        "precisions": {
            "bf16": bf16,
            "int8, ort-cpu layout": u8s8,
            "int8, tensorrt layout on OpenVINO": symmetric_int8_refusal_for(cpu.vnni, cpu.isa) or "runs",
            "int8 made from weights on demand": on_demand,
        },
        "int8_weight_bits": 7 if seven_bit else 8,
        "routes": [{"route": r.label, "runs_from": r.artifact if r.artifact == "weights" else
                    f"{r.file_precision} {r.artifact}",
                    "unavailable": facts.unavailable(r)} for r in RANKING],
        "versions": library_versions(),
        "cache": str(cache_root()),
    }
