"""Which instruction sets the CPU kernels were allowed, for the first line of every benchmark.

The CPU flags say what the processor has; torch's own kernels (``ATEN_CPU_CAPABILITY``), oneDNN's
(``ONEDNN_MAX_CPU_ISA``) and MKL's (``MKL_ENABLE_INSTRUCTIONS``) can be capped below it, which times an
AVX2-only CPU's kernels (a Zen 2 or Zen 3 class) on an AVX-512 machine. The cap changes the kernels, not the
caches, clock or memory of that other CPU, and not what ``dtype: auto`` reads from the flags: pass float32
explicitly (a params file with ``policy.dtype``/``train.dtype: float32``), as ``auto`` resolves there.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        .venv/bin/python benchmarks/augment_throughput.py --dtypes float32 --batch-sizes 16 64 --packed
"""

from __future__ import annotations

import os

CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def describe_kernels() -> str:
    """``torch kernels AVX512``, plus the oneDNN/MKL caps where set."""
    import torch

    caps = [f"{name}={os.environ[name]}" for name in CAPS if name in os.environ]
    return f"torch kernels {torch.backends.cpu.get_cpu_capability()}" + (f" ({', '.join(caps)})" if caps else "")
