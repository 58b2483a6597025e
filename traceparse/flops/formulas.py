"""Per-op FLOP formulas over a trace's `Input Dims` / `Concrete Inputs`.

Conventions (the report states them):
  * a multiply-add is 2 FLOPs; a GEMM [m,k]·[k,n] is 2·m·k·n, plus m·n for a fused bias add
    (torch's FlopCounterMode leaves the bias out);
  * attention counts its two matmuls, QKᵀ and PV: 2·b·h_q·pairs·(d_qk + d_v), `pairs` being the
    query-key pairs. `causal` (the default) counts the pairs a masked kernel computes — the
    unmasked triangle, or band for sliding windows; `full` counts every s_q·s_k pair, whatever
    the mask (the PaLM / FlopCounterMode convention). GQA changes no FLOPs: every query head
    still attends. Backward is 2.5× forward (dQ, dK, dV, dP and the recomputed S: five matmuls
    against two). A boolean/additive mask tensor is not read: such calls count as unmasked.
    Attention written as plain matmuls (eager; SDPA's math backend in backward) is GEMM work,
    counted as computed — all s_q·s_k pairs; varlen kernels are taken at the mean sequence length
    (exact when the packed sequences are equally long);
  * convolution: 2·N·C_out·prod(out)·(C_in/groups)·prod(kernel), plus N·C_out·prod(out) for a
    bias; a transposed convolution 2·N·C_in·prod(in)·(C_out/groups)·prod(kernel). Backward
    counts the same for each of grad-input and grad-weight it computes;
  * elementwise and reductions: one FLOP per output (or input, for reductions) element —
    counted as a separate kind, never mixed into tensor FLOPs.

Each formula reads the argument positions of the op's schema; tests check the tables against
torch's schemas (`torch.ops.aten.<op>.default._schema`) and against real CPU and H200 traces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

AttentionConvention = Literal["causal", "full"]
# Attention backward as a multiple of forward: 2.5 counts dQ, dK, dV, dP and the recomputed scores
# S (what FlashAttention's backward executes); 2.0 is FlopCounterMode's convention (the four
# gradient matmuls only), which peer tools use. `count_flops(attention_backward=…)` rescales.
ATTENTION_BACKWARD_DEFAULT = 2.5
FlopKind = Literal["gemm", "attention", "conv", "elementwise", "ssm"]
TENSOR_KINDS: tuple[str, ...] = ("gemm", "attention", "conv", "ssm")


@dataclass(frozen=True)
class OpArgs:
    dims: list[Any]  # Input Dims: one list per argument ([] for scalars)
    concrete: list[Any]  # Concrete Inputs: strings, "" for tensors
    types: list[Any]


@dataclass(frozen=True)
class FlopCount:
    flops: float
    kind: FlopKind


Formula = Callable[[OpArgs, AttentionConvention], FlopCount | None]


def _shape(args: OpArgs, i: int) -> list[int] | None:
    if i < 0 or i >= len(args.dims):
        return None
    d = args.dims[i]
    if not isinstance(d, list) or not d or not all(isinstance(x, int) for x in d):
        return None
    return d


def _concrete(args: OpArgs, i: int) -> str:
    if 0 <= i < len(args.concrete) and isinstance(args.concrete[i], str):
        return args.concrete[i]
    return ""


def _flag(args: OpArgs, i: int) -> bool:
    return _concrete(args, i).strip().lower() in ("true", "1")


def _int(args: OpArgs, i: int) -> int | None:
    try:
        return int(_concrete(args, i).strip())
    except ValueError:
        return None


def _int_list(args: OpArgs, i: int) -> list[int] | None:
    text = _concrete(args, i).strip()
    if not text:
        return None
    try:
        vals = [int(x) for x in text.strip("[]").split(",") if x.strip()]
    except ValueError:
        return None
    return vals


def _bool_list(args: OpArgs, i: int) -> list[bool] | None:
    text = _concrete(args, i).strip()
    if not text.startswith("["):
        return None
    return [x.strip().lower() == "true" for x in text.strip("[]").split(",") if x.strip()]


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


# ---- GEMMs -------------------------------------------------------------------------------


def _matrices(args: OpArgs, i: int, rank: int) -> tuple[list[int], list[int]] | None:
    a, b = _shape(args, i), _shape(args, i + 1)
    if not a or not b or len(a) != rank or len(b) != rank:
        return None
    return a, b


def _mm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    # mm, _scaled_mm(_v2), _int_mm: self [m, k] · mat2 [k, n]
    got = _matrices(args, 0, 2)
    if got is None:
        return None
    a, b = got
    return FlopCount(2.0 * a[0] * a[1] * b[1], "gemm")


def _addmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    # addmm, _addmm_activation: bias + mat1 [m, k] · mat2 [k, n]
    got = _matrices(args, 1, 2)
    if got is None:
        return None
    a, b = got
    m, k, n = a[0], a[1], b[1]
    return FlopCount(2.0 * m * k * n + m * n, "gemm")


def _bmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    got = _matrices(args, 0, 3)
    if got is None:
        return None
    a, b = got
    return FlopCount(2.0 * a[0] * a[1] * a[2] * b[2], "gemm")


def _baddbmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    got = _matrices(args, 1, 3)
    if got is None:
        return None
    a, b = got
    bsz, m, k, n = a[0], a[1], a[2], b[2]
    return FlopCount(2.0 * bsz * m * k * n + bsz * m * n, "gemm")


def _addbmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    # self [m, n] + sum over the batch of batch1 [b, m, k] · batch2 [b, k, n]
    got = _matrices(args, 1, 3)
    if got is None:
        return None
    a, b = got
    bsz, m, k, n = a[0], a[1], a[2], b[2]
    return FlopCount(2.0 * bsz * m * k * n + m * n, "gemm")


def _mv(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    a = _shape(args, 0)
    if not a or len(a) != 2:
        return None
    return FlopCount(2.0 * a[0] * a[1], "gemm")


def _grouped_mm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    """MoE grouped GEMM; `offs` splits the ragged dimension into groups, which sums back out.

    2d·3d: A [M_total, k] · B [g, k, n]      3d·3d: A [g, m, k] · B [g, k, n]
    2d·2d: A [m, K_total] · B [K_total, n]   3d·2d: A [g, m, k] · B [k, N_total]
    """
    a, b = _shape(args, 0), _shape(args, 1)
    if not a or not b:
        return None
    if len(a) == 2 and len(b) in (2, 3):
        return FlopCount(2.0 * a[0] * a[1] * b[-1], "gemm")
    if len(a) == 3 and len(b) == 3:
        return FlopCount(2.0 * a[0] * a[1] * a[2] * b[2], "gemm")
    if len(a) == 3 and len(b) == 2:
        return FlopCount(2.0 * a[1] * a[2] * b[1], "gemm")
    return None


# ---- attention -----------------------------------------------------------------------------


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
    q, k, v = _shape(args, sig.q), _shape(args, sig.q + 1), _shape(args, sig.q + 2)
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
    cu = _shape(args, sig.cu_seqlens)
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
        mask_type = _int(args, causal_i) or 0
        causal, bottom_right = mask_type in (1, 2), mask_type == 2
    else:
        causal = causal_i >= 0 and _flag(args, causal_i)
    left, right = _window_side(args, sig.window[0]), _window_side(args, sig.window[1])
    local = _window_side(args, sig.local_window)
    if local is not None and local > 0:
        left = local - 1
    return _Mask(causal, bottom_right, left, right)


def _window_side(args: OpArgs, i: int) -> int | None:
    value = _int(args, i) if i >= 0 else None
    return value if value is not None and value >= 0 else None


def _attention(sig: _AttnSig) -> Formula:
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


# ---- convolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ConvSig:
    """Argument indices of a convolution op (aten::convolution's order unless stated)."""

    x: int = 0
    weight: int = 1
    bias: int = 2  # bias tensor
    stride: int = 3
    pad: int = 4
    dil: int = 5
    transposed: int = 6
    out_pad: int = 7
    groups: int = 8


@dataclass(frozen=True)
class _ConvGeometry:
    n: int
    in_spatial: list[int]
    out_spatial: list[int]
    kernel: list[int]
    c_out: int
    macs: float  # multiply-adds of the convolution itself (no bias)


def _conv_geometry(sig: _ConvSig, args: OpArgs) -> _ConvGeometry | None:
    x, w = _shape(args, sig.x), _shape(args, sig.weight)
    if not x or not w or len(x) < 3 or len(w) != len(x):
        return None
    if not args.concrete:
        # torch < 1.13 recorded no Concrete Inputs: stride, padding and groups are unknown, and
        # defaults would silently count a stride-2 convolution 4x (wrong FLOPs, not unknown ones).
        return None
    spatial = len(x) - 2
    stride, pad, dil = (
        _per_dim(_int_list(args, i) or [d], spatial) for i, d in ((sig.stride, 1), (sig.pad, 0), (sig.dil, 1))
    )
    groups = _int(args, sig.groups) or 1
    kernel, in_sp = w[2:], x[2:]
    if sig.transposed >= 0 and _flag(args, sig.transposed):
        if x[1] != w[0]:
            return None
        out_pad = _per_dim(_int_list(args, sig.out_pad) or [0], spatial)
        out = [
            (in_sp[i] - 1) * stride[i] - 2 * pad[i] + dil[i] * (kernel[i] - 1) + out_pad[i] + 1 for i in range(spatial)
        ]
        macs = float(x[0]) * numel(in_sp) * w[0] * w[1] * numel(kernel)
        return _ConvGeometry(x[0], in_sp, out, kernel, w[1] * groups, macs)
    if x[1] != w[1] * groups:
        return None
    out = [(in_sp[i] + 2 * pad[i] - dil[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(spatial)]
    macs = float(x[0]) * numel(out) * w[0] * w[1] * numel(kernel)
    return _ConvGeometry(x[0], in_sp, out, kernel, w[0], macs)


def _per_dim(values: list[int], spatial: int) -> list[int]:
    return values * spatial if len(values) == 1 else values[:spatial]


def _conv(sig: _ConvSig) -> Formula:
    def formula(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
        g = _conv_geometry(sig, args)
        if g is None or any(o <= 0 for o in g.out_spatial):
            return None
        flops = 2.0 * g.macs
        if _shape(args, sig.bias):
            flops += g.n * g.c_out * numel(g.out_spatial)
        return FlopCount(flops, "conv")

    return formula


# aten::convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
#                            transposed, output_padding, groups, output_mask)
_CONV_BACKWARD = _ConvSig(x=1, weight=2, bias=-1, stride=4, pad=5, dil=6, transposed=7, out_pad=8, groups=9)


def _conv_backward(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    """grad_input and grad_weight each cost one forward convolution; grad_bias a reduction."""
    g = _conv_geometry(_CONV_BACKWARD, args)
    grad_out = _shape(args, 0)
    if g is None or not grad_out:
        return None
    mask = _bool_list(args, 10) or [True, True, False]
    flops = 2.0 * g.macs * (int(mask[0]) + int(len(mask) > 1 and mask[1]))
    if len(mask) > 2 and mask[2] and (_int_list(args, 3) or [0]) != [0]:
        flops += numel(grad_out)
    return FlopCount(flops, "conv")


# ---- elementwise ---------------------------------------------------------------------------


def _elementwise(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    shapes = [d for d in args.dims if isinstance(d, list) and d and all(isinstance(x, int) for x in d)]
    if not shapes:
        return None
    return FlopCount(float(max(numel(s) for s in shapes)), "elementwise")


_ELEMENTWISE = (
    "add",
    "add_",
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
    "exp",
    "exp_",
    "log",
    "pow",
    "rsqrt",
    "sqrt",
    "neg",
    "reciprocal",
    "silu",
    "silu_",
    "gelu",
    "relu",
    "relu_",
    "sigmoid",
    "tanh",
    "softplus",
    "clamp",
    "clamp_min",
    "square",
    "where",
    "masked_fill",
    "masked_fill_",
    "sum",
    "mean",
    "softmax",
    "_softmax",
    "log_softmax",
    "_log_softmax",
    "cumsum",
    "addcmul_",
    "addcdiv_",
    "lerp_",
    "_foreach_mul_",
    "norm",
)

# ---- the registry --------------------------------------------------------------------------

_SDPA = _AttnSig(0, 5)  # scaled_dot_product_attention and its math / fused-overrideable forms
_FLASH_ATTN_FWD = _AttnSig(0, 5, "bshd", bottom_right=True, window=(6, 7))  # flash-attn 2 (package)
_FLASH_ATTN_VARLEN_FWD = _AttnSig(0, 9, "bshd", bottom_right=True, window=(10, 11), cu_seqlens=3)
_FLASH_ATTN_BWD = _AttnSig(1, 11, "bshd", backward=True, bottom_right=True, window=(12, 13))
_FLASH_ATTN_VARLEN_BWD = _AttnSig(1, 15, "bshd", backward=True, bottom_right=True, window=(16, 17), cu_seqlens=9)

_ATTENTION: dict[str, _AttnSig] = {
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

_GEMMS: dict[str, Formula] = {
    "aten::mm": _mm,
    "aten::_int_mm": _mm,
    "aten::_scaled_mm": _mm,
    "aten::_scaled_mm_v2": _mm,
    "aten::addmm": _addmm,
    "aten::_addmm_activation": _addmm,
    "aten::bmm": _bmm,
    "aten::baddbmm": _baddbmm,
    "aten::addbmm": _addbmm,
    "aten::mv": _mv,
    "aten::_grouped_mm": _grouped_mm,
    "aten::_scaled_grouped_mm": _grouped_mm,
    "aten::_scaled_grouped_mm_v2": _grouped_mm,
}

FORMULAS: dict[str, Formula] = {
    **_GEMMS,
    **{name: _attention(sig) for name, sig in _ATTENTION.items()},
    # Convolutions count at aten::convolution, which every conv1d/2d/3d/conv_transpose*d call
    # goes through with explicit padding (conv*d take padding="same" as a string the trace
    # does not show) and the `transposed` flag; _convolution when called on its own.
    "aten::convolution": _conv(_ConvSig()),
    "aten::_convolution": _conv(_ConvSig()),
    "aten::convolution_backward": _conv_backward,
    **{f"aten::{name}": _elementwise for name in _ELEMENTWISE},
}

GEMM_OPS = frozenset(_GEMMS)
ATTENTION_OPS = frozenset(_ATTENTION)
EMBEDDING = "aten::embedding"  # its weight's shape gives the hidden size (aggregate)


def shapes_needed(op_name: str) -> bool:
    """Whether the pipeline reads this op's shape arguments: the loader keeps only those."""
    return op_name in FORMULAS or op_name == EMBEDDING


ATTENTION_BACKWARD_OPS = frozenset(name for name, sig in _ATTENTION.items() if sig.backward)
