"""Bytes of the tensor-core ops — GEMMs, grouped GEMMs, attention, convolutions — and the registry
of every op's byte formula (the model is stated in traffic.py)."""

from __future__ import annotations

from traceparse.flops.args import OpArgs, bool_list_arg, numel, shape_arg
from traceparse.flops.attention import ATTENTION
from traceparse.flops.conv import CONV_BACKWARD, ConvSig, _conv_geometry
from traceparse.flops.traffic import (
    ByteFormula,
    Unknown,
    elementwise_bytes,
    guarded,
    read_bytes,
    scalar_type_bytes,
    size_of,
    tensors,
)

# ---- GEMMs ---------------------------------------------------------------------------------


def _gemm(a_arg: int, out_dtype_arg: int = -1, out_bytes: int | None = None) -> ByteFormula:
    """Every tensor argument read once (A, B, bias, scales), C [.., m, n] written.

    C's shape: A's leading dims and rows with B's columns (mm, addmm, bmm, baddbmm; mv's B is a
    vector); addbmm sums the batch away."""

    def formula(args: OpArgs) -> float | None:
        a, b = shape_arg(args, a_arg), shape_arg(args, a_arg + 1)
        if not a or not b:
            return None
        out = [*a[:-1], b[-1]] if len(b) >= 2 else a[:-1]
        if len(a) == 3 and len(b) == 3 and a_arg == 1 and len(shape_arg(args, 0) or []) == 2:
            out = out[1:]  # addbmm: self [m, n] + Σ_batch
        size = out_bytes or (scalar_type_bytes(args, out_dtype_arg) if out_dtype_arg >= 0 else None)
        size = size or size_of(args, a_arg)
        if size is None:
            return None
        return read_bytes(tensors(args)) + numel(out) * size

    return formula


def _grouped_out(a: list[int], b: list[int], offs: list[int] | None) -> int | None:
    """Elements of a grouped GEMM's output, per layout (see gemm.py's FLOPs):

    2d·3d: [M_total, n]   3d·3d: [g, m, n]   2d·2d: [g, m, n] (g = len(offs))   3d·2d: [m, N_total]
    """
    if len(a) == 2 and len(b) == 3:
        return a[0] * b[2]
    if len(a) == 3 and len(b) == 3:
        return a[0] * a[1] * b[2]
    if len(a) == 2 and len(b) == 2:
        return offs[0] * a[0] * b[1] if offs else None
    if len(a) == 3 and len(b) == 2:
        return a[1] * b[1]
    return None


def _grouped(offs_arg: int, out_dtype_arg: int, default_out: int | None) -> ByteFormula:
    """_grouped_mm(A, B, offs, bias, out_dtype); _scaled_grouped_mm(A, B, scale_a, scale_b, offs,
    bias, scale_result, out_dtype, …), whose FP8 inputs give a bf16 output unless out_dtype says."""

    def formula(args: OpArgs) -> float | None:
        a, b = shape_arg(args, 0), shape_arg(args, 1)
        out = _grouped_out(a, b, shape_arg(args, offs_arg)) if a and b else None
        size = scalar_type_bytes(args, out_dtype_arg) or default_out or size_of(args, 0)
        if out is None or size is None:
            return None
        return read_bytes(tensors(args)) + out * size

    return formula


def _scaled_mm_v2(args: OpArgs) -> float | None:
    """_scaled_mm_v2(A, B, scale_a[], …, scale_b[], …, bias, out_dtype, …): its scales come as
    tensor lists without dtypes and are left out (per-row or per-block: ≤ 1/32 of A or B)."""
    keep = [0, 1, 8, 9]
    pick = [[lst[i] if i < len(lst) else "" for i in keep] for lst in (args.dims, args.concrete, args.types)]
    pick[0][3], pick[2][3] = [], "ScalarType"
    return _gemm(0, out_dtype_arg=3)(OpArgs(*pick))


# ---- attention -----------------------------------------------------------------------------


def _attention(q_arg: int, backward: bool) -> ByteFormula:
    """Q, K, V read and O written once; backward reads Q, K, V, O, dO and writes dQ, dK, dV
    (the softmax statistics, b·h·s_q floats, are left out: under 1 % at head dim ≥ 64)."""

    def formula(args: OpArgs) -> float | None:
        q, k, v = (shape_arg(args, q_arg + j) for j in range(3))
        size = size_of(args, q_arg)
        if not q or not k or not v or size is None or q[-1] <= 0:
            return None
        o = numel(q) // q[-1] * v[-1]
        qkv = numel(q) + numel(k) + numel(v)
        return float(size * (2 * (qkv + o) if backward else qkv + o))

    return formula


# ---- convolutions --------------------------------------------------------------------------


def _conv(args: OpArgs) -> float | None:
    g = _conv_geometry(ConvSig(), args)
    size = size_of(args, 0)
    if g is None or size is None or any(o <= 0 for o in g.out_spatial):
        return None
    return read_bytes(tensors(args)) + g.n * g.c_out * numel(g.out_spatial) * size


def _conv_backward(args: OpArgs) -> float | None:
    """dY, X, W read; dX (X's shape), dW (W's shape), db (c_out) written as the output mask asks."""
    g = _conv_geometry(CONV_BACKWARD, args)
    x, w = shape_arg(args, 1), shape_arg(args, 2)
    size = size_of(args, 1)
    if g is None or not x or not w or size is None:
        return None
    mask = bool_list_arg(args, 10) or [True, True, False]
    written = (numel(x) if mask[0] else 0) + (numel(w) if len(mask) > 1 and mask[1] else 0)
    written += g.c_out if len(mask) > 2 and mask[2] else 0
    return read_bytes(tensors(args)) + written * size


# ---- the registry --------------------------------------------------------------------------


def _registry() -> dict[str, ByteFormula]:
    out: dict[str, ByteFormula] = {
        "aten::mm": _gemm(0),
        "aten::_scaled_mm": _gemm(0, out_dtype_arg=6),
        "aten::_scaled_mm_v2": _scaled_mm_v2,
        "aten::_int_mm": _gemm(0, out_bytes=4),
        "aten::addmm": _gemm(1),
        "aten::_addmm_activation": _gemm(1),
        "aten::bmm": _gemm(0),
        "aten::baddbmm": _gemm(1),
        "aten::addbmm": _gemm(1),
        "aten::mv": _gemm(0),
        "aten::_grouped_mm": _grouped(2, 4, None),
        "aten::_scaled_grouped_mm": _grouped(4, 7, 2),
        "aten::convolution": _conv,
        "aten::_convolution": _conv,
        "aten::convolution_backward": _conv_backward,
        **{name: _attention(sig.q, sig.backward) for name, sig in ATTENTION.items()},
        **elementwise_bytes(),
    }
    return {name: guarded(f) for name, f in out.items()}


BYTES: dict[str, ByteFormula] = _registry()

__all__ = ["BYTES", "Unknown"]
