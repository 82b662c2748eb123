"""Facts about this machine's hardware that several stages decide on (training precision, backend choice)."""

from __future__ import annotations

from pathlib import Path


def cpu_has_bf16() -> bool:
    """Whether this x86 CPU has native bf16 dot products (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
