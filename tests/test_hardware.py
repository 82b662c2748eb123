"""The CPU's instruction-set class as a pure function of its flags, and reading /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.hardware import ISA_CLASSES, CpuInfo, isa_class, read_cpu, this_cpu

ZEN3 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni"  # AMD EPYC 7003: AVX2 only
ZEN5 = ZEN3 + " avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 avx512_vbmi"
SAPPHIRE_RAPIDS = ZEN3 + " avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
ALDER_LAKE = ZEN3 + " avx_vnni"
SKYLAKE_SP = ZEN3 + " avx512f avx512bw avx512vl"


@pytest.mark.parametrize(("flags", "isa", "vnni", "bf16"), [
    (ZEN3, "avx2", False, False),
    (ALDER_LAKE, "avx2_vnni", True, False),
    (SKYLAKE_SP, "avx512", False, False),
    (ZEN3 + " avx512f avx512_vnni", "avx512_vnni", True, False),
    (ZEN5, "avx512_bf16", True, True),
    (SAPPHIRE_RAPIDS, "amx", True, True),
    ("fpu sse sse2", "baseline", False, False),
])
def test_isa_class_and_int8_bf16_facts_from_flags(flags: str, isa: str, vnni: bool, bf16: bool) -> None:
    cpu = CpuInfo("test cpu", frozenset(flags.split()))
    assert (cpu.isa, cpu.vnni, cpu.bf16) == (isa, vnni, bf16)
    assert isa_class(set(flags.split())) == isa and isa in ISA_CLASSES


def test_read_cpu_takes_the_model_and_first_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: {ZEN3}\n\n"
                    f"processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: {ZEN5}\n")
    cpu = read_cpu(info)
    assert cpu.model == "AMD EPYC 7B13" and cpu.isa == "avx2" and not cpu.vnni
    missing = read_cpu(tmp_path / "nothing")
    assert missing.flags == frozenset() and missing.isa == "baseline"


def test_this_machine_has_a_known_class() -> None:
    assert this_cpu().isa in ISA_CLASSES and this_cpu() is this_cpu()  # read once
