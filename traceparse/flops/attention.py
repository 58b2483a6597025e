"""Attention FLOPs: QKᵀ and PV over the query-key pairs a kernel computes (see formulas.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from traceparse.flops.args import (
    AttentionConvention,
    FlopCount,
    Formula,
    OpArgs,
    flag_arg,
    int_arg,
    shape_arg,
)

# ---- attention -----------------------------------------------------------------------------

# Attention backward as a multiple of forward: 2.5 counts dQ, dK, dV, dP and the recomputed scores
# S (what FlashAttention's backward executes); 2.0 is FlopCounterMode's convention (the four
# gradient matmuls only), which peer tools use. `count_flops(attention_backward=…)` rescales.
ATTENTION_BACKWARD_DEFAULT = 2.5


def attention_pairs(
    s_q: int,
    s_k: int,
    causal: bool,
    convention: AttentionConvention,
    *,
    bottom_right: bool = False,
    window_left: int | None = None,
    window_right: int | None = None,
) -> float:
    """Query-key pairs a kernel computes.

    Query i may see key j when lo ≤ j − i − offset ≤ hi, where offset is 0 for torch's is_causal
    (top-left alignment) and s_k − s_q for flash-attn's causal (bottom-right alignment); a causal
    mask sets hi = 0, a sliding window bounds lo by −window_left and hi by window_right.
    `full` counts every pair, whatever the mask.
    """
    if convention == "full" or (not causal and window_left is None and window_right is None):
        return float(s_q) * s_k
    offset = s_k - s_q if bottom_right else 0
    hi = window_right
    if causal:
        hi = 0 if window_right is None else min(0, window_right)
    return _band_pairs(s_q, s_k, offset, window_left, hi)


@lru_cache(maxsize=1024)
def _band_pairs(s_q: int, s_k: int, offset: int, left: int | None, right: int | None) -> float:
    if s_q <= 0 or s_k <= 0:
        return 0.0
    i = np.arange(s_q, dtype=np.int64) + offset
    first = np.zeros(s_q, np.int64) if left is None else np.maximum(0, i - left)
    last = np.full(s_q, s_k - 1, np.int64) if right is None else np.minimum(s_k - 1, i + right)
    return float(np.maximum(0, last - first + 1).sum())


def attention_flops(
    b: int,
    h_q: int,
    s_q: int,
    s_k: int,
    d_qk: int,
    d_v: int,
    causal: bool,
    convention: AttentionConvention,
    *,
    bottom_right: bool = False,
    window_left: int | None = None,
    window_right: int | None = None,
) -> float:
    """Forward FLOPs of attention: QKᵀ and PV over the computed pairs (see `attention_pairs`)."""
    pairs = attention_pairs(
        s_q, s_k, causal, convention, bottom_right=bottom_right, window_left=window_left, window_right=window_right
    )
    return 2.0 * b * h_q * pairs * (d_qk + d_v)


@dataclass(frozen=True)
class _Mask:
    causal: bool
    bottom_right: bool
    window_left: int | None
    window_right: int | None


@dataclass(frozen=True)
class _AttnSig:
    """Where an attention op keeps what its FLOPs depend on (argument indices, -1: absent)."""

    q: int  # query; key and value follow it
    causal: int  # is_causal (or custom_mask_type, see mask_type)
    layout: Literal["bhsd", "bshd"] = "bhsd"  # 4-D layout of q/k/v; a 3-D q is varlen [total, h, d]
    backward: bool = False
    mask_type: bool = False  # `causal` is _efficient_attention's custom_mask_type: 1 top-left, 2 bottom-right
    bottom_right: bool = False  # causal aligns the last query with the last key (flash-attn kernels)
    window: tuple[int, int] = (-1, -1)  # window_size_left / window_size_right (-1 or None: unbounded)
    local_window: int = -1  # _efficient_attention's window_size: keys i−w+1 … i
    cu_seqlens: int = -1  # cu_seqlens_q (cu_seqlens_k follows): varlen batch size from its length
    quantized_args: int = -1  # the op's quantized overload has this many args …
    quantized_causal: int = -1  # … and keeps is_causal here


@dataclass(frozen=True)
class _Geometry:
    b: int
    h_q: int
    s_q: int
    s_k: int
    d_qk: int
    d_v: int


def _geometry(sig: _AttnSig, args: OpArgs) -> _Geometry | None:
    q, k, v = shape_arg(args, sig.q), shape_arg(args, sig.q + 1), shape_arg(args, sig.q + 2)
    if not q or not k or not v or not len(q) == len(k) == len(v):
        return None
    if len(q) == 4 and sig.layout == "bhsd":
        return _Geometry(q[0], q[1], q[2], k[2], q[3], v[3])
    if len(q) == 4:
        return _Geometry(q[0], q[2], q[1], k[1], q[3], v[3])
    if len(q) == 3 and sig.cu_seqlens >= 0:
        return _varlen_geometry(sig, args, q, k, v)
    return None


def _varlen_geometry(sig: _AttnSig, args: OpArgs, q: list[int], k: list[int], v: list[int]) -> _Geometry | None:
    """Packed sequences [total, h, d]: each sequence taken at the mean length (exact when equal)."""
    cu = shape_arg(args, sig.cu_seqlens)
    if not cu or len(cu) != 1 or cu[0] < 2:
        return None
    b = cu[0] - 1
    return _Geometry(b, q[1], round(q[0] / b), round(k[0] / b), q[2], v[2])


def _attention_mask(sig: _AttnSig, args: OpArgs) -> _Mask:
    causal_i = sig.causal
    if sig.quantized_args > 0 and len(args.dims) == sig.quantized_args:
        causal_i = sig.quantized_causal
    bottom_right = sig.bottom_right
    if sig.mask_type:
        mask_type = int_arg(args, causal_i) or 0
        causal, bottom_right = mask_type in (1, 2), mask_type == 2
    else:
        causal = causal_i >= 0 and flag_arg(args, causal_i)
    left, right = _window_side(args, sig.window[0]), _window_side(args, sig.window[1])
    local = _window_side(args, sig.local_window)
    if local is not None and local > 0:
        left = local - 1
    return _Mask(causal, bottom_right, left, right)


def _window_side(args: OpArgs, i: int) -> int | None:
    value = int_arg(args, i) if i >= 0 else None
    return value if value is not None and value >= 0 else None


def attention_formula(sig: _AttnSig) -> Formula:
    def formula(args: OpArgs, convention: AttentionConvention) -> FlopCount | None:
        g = _geometry(sig, args)
        if g is None:
            return None
        m = _attention_mask(sig, args)
        flops = attention_flops(
            g.b,
            g.h_q,
            g.s_q,
            g.s_k,
            g.d_qk,
            g.d_v,
            m.causal,
            convention,
            bottom_right=m.bottom_right,
            window_left=m.window_left,
            window_right=m.window_right,
        )
        return FlopCount(flops * (ATTENTION_BACKWARD_DEFAULT if sig.backward else 1.0), "attention")

    return formula


_SDPA = _AttnSig(0, 5)  # scaled_dot_product_attention and its math / fused-overrideable forms
_FLASH_ATTN_FWD = _AttnSig(0, 5, "bshd", bottom_right=True, window=(6, 7))  # flash-attn 2 (package)
_FLASH_ATTN_VARLEN_FWD = _AttnSig(0, 9, "bshd", bottom_right=True, window=(10, 11), cu_seqlens=3)
_FLASH_ATTN_BWD = _AttnSig(1, 11, "bshd", backward=True, bottom_right=True, window=(12, 13))
_FLASH_ATTN_VARLEN_BWD = _AttnSig(1, 15, "bshd", backward=True, bottom_right=True, window=(16, 17), cu_seqlens=9)

ATTENTION: dict[str, _AttnSig] = {
    # forward; signatures as of torch 2.13 (checked against torch's schemas in tests)
    "aten::scaled_dot_product_attention": _SDPA,
    "aten::_scaled_dot_product_attention_math": _SDPA,
    "aten::_scaled_dot_product_attention_math_for_mps": _SDPA,
    "aten::_scaled_dot_product_fused_attention_overrideable": _SDPA,
    "aten::_scaled_dot_product_flash_attention": _AttnSig(0, 4, quantized_args=10, quantized_causal=7),
    "aten::_scaled_dot_product_flash_attention_for_cpu": _AttnSig(0, 4),
    "aten::_scaled_dot_product_efficient_attention": _AttnSig(0, 6),
    "aten::_scaled_dot_product_cudnn_attention": _AttnSig(0, 6),
    "aten::_cudnn_attention_forward": _AttnSig(0, 10),
    "aten::_flash_attention_forward": _AttnSig(0, 8, "bshd", bottom_right=True, window=(11, 12), cu_seqlens=3),
    "aten::_efficient_attention_forward": _AttnSig(0, 9, "bshd", mask_type=True, local_window=13, cu_seqlens=4),
    "flash_attn::_flash_attn_forward": _FLASH_ATTN_FWD,
    "flashattn::_flash_attn_forward": _FLASH_ATTN_FWD,
    "flash_attn::_flash_attn_varlen_forward": _FLASH_ATTN_VARLEN_FWD,
    "flashattn::_flash_attn_varlen_forward": _FLASH_ATTN_VARLEN_FWD,
    # backward
    "aten::_scaled_dot_product_flash_attention_backward": _AttnSig(1, 11, backward=True),
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward": _AttnSig(1, 7, backward=True),
    "aten::_scaled_dot_product_efficient_attention_backward": _AttnSig(1, 11, backward=True),
    "aten::_scaled_dot_product_cudnn_attention_backward": _AttnSig(1, 14, backward=True),
    "aten::_cudnn_attention_backward": _AttnSig(1, 14, backward=True),
    "aten::_flash_attention_backward": _AttnSig(
        1, 11, "bshd", backward=True, bottom_right=True, window=(15, 16), cu_seqlens=6
    ),
    "aten::_efficient_attention_backward": _AttnSig(
        1, 14, "bshd", backward=True, mask_type=True, local_window=18, cu_seqlens=6
    ),
    "flash_attn::_flash_attn_backward": _FLASH_ATTN_BWD,
    "flashattn::_flash_attn_backward": _FLASH_ATTN_BWD,
    "flash_attn::_flash_attn_varlen_backward": _FLASH_ATTN_VARLEN_BWD,
    "flashattn::_flash_attn_varlen_backward": _FLASH_ATTN_VARLEN_BWD,
}


ATTENTION_BACKWARD_OPS = frozenset(name for name, sig in ATTENTION.items() if sig.backward)
