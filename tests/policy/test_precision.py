"""dtype auto-selection from the machine's flags (mocked flags, real loading)."""

from __future__ import annotations

import pytest

from coaug.errors import CoaugError
from coaug.policy import precision
from coaug.policy.model import load_policy
from coaug.policy.precision import resolve_dtype

from ..tiny_models import build_tiny_llama

AVX2_EPYC = frozenset({"sse4_2", "avx", "avx2", "fma"})
ZEN5 = AVX2_EPYC | {"avx512f", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX2_EPYC | {"avx512f", "amx_tile", "amx_bf16"}
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16"})


@pytest.mark.parametrize(
    ("flags", "cuda_bf16", "expected"),
    [
        (AVX2_EPYC, False, "float32"),
        (ZEN5, False, "bfloat16"),
        (SAPPHIRE_RAPIDS, False, "bfloat16"),
        (GRAVITON3, False, "bfloat16"),
        (frozenset(), False, "float32"),
        (AVX2_EPYC, True, "bfloat16"),
    ],
)
def test_auto_is_bf16_only_where_it_is_native(flags, cuda_bf16, expected):
    assert resolve_dtype("auto", cuda_bf16=cuda_bf16, cpu_flags=flags) == expected


def test_a_named_dtype_is_kept_and_an_unknown_one_is_refused():
    assert resolve_dtype("float32", cuda_bf16=True, cpu_flags=ZEN5) == "float32"
    assert resolve_dtype("bfloat16", cuda_bf16=False, cpu_flags=AVX2_EPYC) == "bfloat16"
    with pytest.raises(CoaugError, match="dtype must be auto or one of float32, bfloat16, float16, got 'fp8'"):
        resolve_dtype("fp8", cuda_bf16=False, cpu_flags=ZEN5)


@pytest.mark.parametrize(("flags", "resolved"), [(AVX2_EPYC, "float32"), (ZEN5, "bfloat16")])
def test_auto_policy_loads_and_fingerprints_the_resolved_dtype(tmp_path, monkeypatch, flags, resolved):
    import torch

    folder = build_tiny_llama(tmp_path / "tiny")
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    auto = load_policy(str(folder), tmp_path / "cache", dtype="auto")
    named = load_policy(str(folder), tmp_path / "cache", dtype=resolved)

    assert auto.dtype == resolved and auto.model.dtype == getattr(torch, resolved)
    assert auto.fingerprint == named.fingerprint
