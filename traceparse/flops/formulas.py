"""Per-op FLOP formulas over a trace's `Input Dims` / `Concrete Inputs`.

Conventions (the report states them):
  * a multiply-add is 2 FLOPs; a GEMM [m,k]·[k,n] is 2·m·k·n, plus m·n for a fused bias add;
  * attention counts its two matmuls, QKᵀ and PV: 2·b·h_q·s_q·s_k·(d_qk + d_v). With a causal
    mask the default (`causal`) counts only the unmasked (i, j) pairs — what causal kernels
    compute; `full` counts all s_q·s_k pairs (the PaLM / FlopCounterMode convention). GQA
    changes no FLOPs: every query head still attends; backward is 2.5× forward (dQ, dK, dV, dP
    recompute: five matmuls against two);
  * convolution: 2·N·C_out·prod(out)·(C_in/groups)·prod(kernel), plus bias;
  * elementwise and reductions: one FLOP per output (or input, for reductions) element —
    counted as a separate kind, never mixed into tensor FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

AttentionConvention = Literal["causal", "full"]
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
    if i >= len(args.dims):
        return None
    d = args.dims[i]
    if not isinstance(d, list) or not d or not all(isinstance(x, int) for x in d):
        return None
    return d


def _concrete(args: OpArgs, i: int) -> str:
    if i < len(args.concrete) and isinstance(args.concrete[i], str):
        return args.concrete[i]
    return ""


def _flag(args: OpArgs, i: int) -> bool:
    return _concrete(args, i).strip().lower() in ("true", "1")


def _int_list(args: OpArgs, i: int) -> list[int] | None:
    text = _concrete(args, i).strip()
    if not text:
        return None
    try:
        vals = [int(x) for x in text.strip("[]").split(",") if x.strip()]
    except ValueError:
        return None
    return vals


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


# ---- GEMMs -------------------------------------------------------------------------------


def _mm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    a, b = _shape(args, 0), _shape(args, 1)
    if not a or not b or len(a) != 2 or len(b) != 2:
        return None
    return FlopCount(2.0 * a[0] * a[1] * b[1], "gemm")


def _addmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    a, b = _shape(args, 1), _shape(args, 2)
    if not a or not b or len(a) != 2 or len(b) != 2:
        return None
    m, k, n = a[0], a[1], b[1]
    return FlopCount(2.0 * m * k * n + m * n, "gemm")


def _bmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    a, b = _shape(args, 0), _shape(args, 1)
    if not a or not b or len(a) != 3 or len(b) != 3:
        return None
    return FlopCount(2.0 * a[0] * a[1] * a[2] * b[2], "gemm")


def _baddbmm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    a, b = _shape(args, 1), _shape(args, 2)
    if not a or not b or len(a) != 3 or len(b) != 3:
        return None
    bsz, m, k, n = a[0], a[1], a[2], b[2]
    return FlopCount(2.0 * bsz * m * k * n + bsz * m * n, "gemm")


def _grouped_mm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    """MoE grouped GEMM: A [total_m, k] · B [groups, k, n] (offsets split total_m by group)."""
    a, b = _shape(args, 0), _shape(args, 1)
    if not a or not b:
        return None
    if len(a) == 2 and len(b) == 3:
        return FlopCount(2.0 * a[0] * a[1] * b[2], "gemm")
    if len(a) == 3 and len(b) == 3:
        return FlopCount(2.0 * a[0] * a[1] * a[2] * b[2], "gemm")
    return None


# ---- attention -----------------------------------------------------------------------------


def attention_pairs(s_q: int, s_k: int, causal: bool, convention: AttentionConvention) -> float:
    """Query-key pairs a kernel computes. Causal masks align top-left, as torch's is_causal does."""
    if not causal or convention == "full":
        return float(s_q) * s_k
    # Row i attends to keys 0..i (top-left alignment): sum of min(i + 1, s_k).
    full_rows = max(0, s_q - s_k)
    tri = min(s_q, s_k)
    return tri * (tri + 1) / 2.0 + full_rows * float(s_k)


def attention_flops(
    b: int, h_q: int, s_q: int, s_k: int, d_qk: int, d_v: int, causal: bool, convention: AttentionConvention
) -> float:
    return 2.0 * b * h_q * attention_pairs(s_q, s_k, causal, convention) * (d_qk + d_v)


@dataclass(frozen=True)
class _AttnSig:
    q: int  # argument index of query
    causal: int  # argument index of is_causal (-1: none)
    layout: Literal["bhsd", "bshd"] = "bhsd"
    backward: bool = False
    mask_type: bool = False  # is_causal is custom_mask_type (0 none, 1/2 causal)


def _attention(sig: _AttnSig) -> Formula:
    def formula(args: OpArgs, convention: AttentionConvention) -> FlopCount | None:
        q, k, v = _shape(args, sig.q), _shape(args, sig.q + 1), _shape(args, sig.q + 2)
        if not q or not k or not v or len(q) != 4 or len(k) != 4 or len(v) != 4:
            return None
        if sig.layout == "bhsd":
            b, h_q, s_q, d_qk = q
            s_k, d_v = k[2], v[3]
        else:
            b, s_q, h_q, d_qk = q
            s_k, d_v = k[1], v[3]
        if sig.causal < 0:
            causal = False
        elif sig.mask_type:
            causal = _concrete(args, sig.causal).strip() not in ("", "0")
        else:
            causal = _flag(args, sig.causal)
        flops = attention_flops(b, h_q, s_q, s_k, d_qk, d_v, causal, convention)
        return FlopCount(flops * (2.5 if sig.backward else 1.0), "attention")

    return formula


# ---- convolution ---------------------------------------------------------------------------


def _conv(
    weight_i: int,
    bias_i: int,
    stride_i: int,
    pad_i: int,
    dil_i: int,
    groups_i: int,
    transposed_i: int = -1,
    kernel_i: int = -1,
) -> Formula:
    def formula(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
        x, w = _shape(args, 0), _shape(args, weight_i)
        if not x or not w or len(x) < 3 or len(w) != len(x):
            return None
        spatial = len(x) - 2
        stride = _int_list(args, stride_i) or [1]
        pad = _int_list(args, pad_i) or [0]
        dil = _int_list(args, dil_i) or [1]
        groups = int(_concrete(args, groups_i) or 1) if groups_i >= 0 else 1
        if transposed_i >= 0 and _flag(args, transposed_i):
            return None  # transposed convs: output size needs output_padding; rare in LMs
        stride, pad, dil = (_per_dim(v, spatial) for v in (stride, pad, dil))
        kernel = w[2:]
        out = [(x[2 + i] + 2 * pad[i] - dil[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(spatial)]
        if any(o <= 0 for o in out):
            return None
        n, c_out, c_in_per_group = x[0], w[0], w[1]
        flops = 2.0 * n * c_out * numel(out) * c_in_per_group * numel(kernel)
        if bias_i >= 0 and _shape(args, bias_i):
            flops += n * c_out * numel(out)
        del groups  # carried by the weight's C_in/groups dimension already
        return FlopCount(flops, "conv")

    return formula


def _per_dim(values: list[int], spatial: int) -> list[int]:
    return values * spatial if len(values) == 1 else values[:spatial]


def _depthwise2d(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    # aten::_conv_depthwise2d(self, weight, kernel_size, bias, stride, padding, dilation)
    return _conv(1, 3, 4, 5, 6, -1)(args, _c)


# ---- elementwise ---------------------------------------------------------------------------


def _elementwise(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    shapes = [d for d in args.dims if isinstance(d, list) and d and all(isinstance(x, int) for x in d)]
    if not shapes:
        return None
    return FlopCount(float(max(numel(s) for s in shapes)), "elementwise")


_ELEMENTWISE = [
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
    "mul_",
    "_foreach_mul_",
    "norm",
]

FORMULAS: dict[str, Formula] = {
    "aten::mm": _mm,
    "aten::addmm": _addmm,
    "aten::bmm": _bmm,
    "aten::baddbmm": _baddbmm,
    "aten::_scaled_mm": _mm,
    "aten::_grouped_mm": _grouped_mm,
    "aten::_scaled_grouped_mm": _grouped_mm,
    # attention, forward
    "aten::scaled_dot_product_attention": _attention(_AttnSig(0, 5)),
    "aten::_scaled_dot_product_attention_math": _attention(_AttnSig(0, 5)),
    "aten::_scaled_dot_product_flash_attention": _attention(_AttnSig(0, 4)),
    "aten::_scaled_dot_product_flash_attention_for_cpu": _attention(_AttnSig(0, 4)),
    "aten::_scaled_dot_product_efficient_attention": _attention(_AttnSig(0, 6)),
    "aten::_scaled_dot_product_cudnn_attention": _attention(_AttnSig(0, 6)),
    "aten::_cudnn_attention_forward": _attention(_AttnSig(0, 10)),
    "aten::_flash_attention_forward": _attention(_AttnSig(0, 8, "bshd")),
    "aten::_efficient_attention_forward": _attention(_AttnSig(0, 9, "bshd", mask_type=True)),
    "flash_attn::_flash_attn_forward": _attention(_AttnSig(0, 5, "bshd")),
    # attention, backward
    "aten::_scaled_dot_product_flash_attention_backward": _attention(_AttnSig(1, 11, backward=True)),
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward": _attention(_AttnSig(1, 7, backward=True)),
    "aten::_scaled_dot_product_efficient_attention_backward": _attention(_AttnSig(1, 11, backward=True)),
    "aten::_scaled_dot_product_cudnn_attention_backward": _attention(_AttnSig(1, 14, backward=True)),
    "aten::_cudnn_attention_backward": _attention(_AttnSig(1, 14, backward=True)),
    "aten::_flash_attention_backward": _attention(_AttnSig(1, 11, "bshd", backward=True)),
    "aten::_efficient_attention_backward": _attention(_AttnSig(1, 14, "bshd", backward=True, mask_type=True)),
    "flash_attn::_flash_attn_backward": _attention(_AttnSig(1, 7, "bshd", backward=True)),
    # convolution (the outermost of a nest counts)
    "aten::conv1d": _conv(1, 2, 3, 4, 5, 6),
    "aten::conv2d": _conv(1, 2, 3, 4, 5, 6),
    "aten::conv3d": _conv(1, 2, 3, 4, 5, 6),
    "aten::convolution": _conv(1, 2, 3, 4, 5, 8, transposed_i=6),
    "aten::_convolution": _conv(1, 2, 3, 4, 5, 8, transposed_i=6),
    "aten::_conv_depthwise2d": _depthwise2d,
    **{f"aten::{name}": _elementwise for name in _ELEMENTWISE},
}

GEMM_OPS = frozenset(k for k, v in FORMULAS.items() if v in (_mm, _addmm, _bmm, _baddbmm, _grouped_mm))
