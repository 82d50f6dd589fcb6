"""Which floating-point dtype the policy computes in, decided from the machine at run time.

``auto`` picks bfloat16 where the hardware computes it natively — any CUDA GPU that torch says supports it,
or a CPU whose flags name a native bf16 instruction set (x86 AVX512-BF16 or AMX-BF16, Arm BF16) — and
float32 elsewhere. Measured on the developers' CPUs: bf16 generation was 2.4-4x faster than fp32 on a Zen 5
with AVX512-BF16 and 2.3x *slower* on an AVX2-only EPYC (emulated bf16), so no dtype may be assumed.
bf16 changes the greedy output of some texts, so the resolved dtype is recorded beside every result and is
part of the model fingerprint; ``float32`` keeps runs bit-reproducible across CPU types.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from coaug.errors import CoaugError

AUTO = "auto"
DTYPES = ("float32", "bfloat16", "float16")
# /proc/cpuinfo flag names of native bf16 arithmetic: x86 (AVX512-BF16, AMX-BF16) and Arm (FEAT_BF16).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def resolve_dtype(requested: str, *, cuda_bf16: bool, cpu_flags: frozenset[str]) -> str:
    """The dtype name that ``requested`` (a dtype name or ``auto``) means on this machine.

    Parameters
    ----------
    requested : str
        ``auto`` or one of :data:`DTYPES`.
    cuda_bf16 : bool
        True when the policy runs on a CUDA device with bf16 support (the paper's setting).
    cpu_flags : frozenset of str
        The CPU's feature flags (:func:`cpu_flags`).
    """
    if requested == AUTO:
        return "bfloat16" if cuda_bf16 or cpu_flags & NATIVE_BF16_FLAGS else "float32"
    if requested not in DTYPES:
        raise CoaugError(f"params: dtype must be {AUTO} or one of {', '.join(DTYPES)}, got '{requested}'")
    return requested


def cpu_flags() -> frozenset[str]:
    """Feature flags of this CPU (``flags`` on x86, ``Features`` on Arm); empty where /proc/cpuinfo is absent."""
    return frozenset(_cpuinfo_field(("flags", "Features")).split())


@functools.cache
def _cpuinfo_field(names: tuple[str, ...]) -> str:
    """The first value of a /proc/cpuinfo field named one of ``names`` ("" when there is none)."""
    if not CPUINFO.is_file():
        return ""
    for line in CPUINFO.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return ""


def machine_dtype(requested: str) -> str:
    """:func:`resolve_dtype` for the machine this process runs on."""
    import torch

    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return resolve_dtype(requested, cuda_bf16=cuda_bf16, cpu_flags=cpu_flags())


def describe_machine() -> str:
    """One line for logs and benchmarks: the processor and the flags that decide the dtype."""
    flags = sorted(cpu_flags() & (NATIVE_BF16_FLAGS | {"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"}))
    name = _cpuinfo_field(("model name",)) or platform.machine()
    return f"{name}, {os.cpu_count()} cores, flags: {' '.join(flags) or 'none of note'}"
