"""GEMM FLOPs: 2·m·k·n per matrix product, plus m·n for a fused bias add (see formulas.py)."""

from __future__ import annotations

from traceparse.flops.args import (
    AttentionConvention,
    FlopCount,
    Formula,
    OpArgs,
    shape_arg,
)

# ---- GEMMs -------------------------------------------------------------------------------


def _matrices(args: OpArgs, i: int, rank: int) -> tuple[list[int], list[int]] | None:
    a, b = shape_arg(args, i), shape_arg(args, i + 1)
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
    a = shape_arg(args, 0)
    if not a or len(a) != 2:
        return None
    return FlopCount(2.0 * a[0] * a[1], "gemm")


def _grouped_mm(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    """MoE grouped GEMM; `offs` splits the ragged dimension into groups, which sums back out.

    2d·3d: A [M_total, k] · B [g, k, n]      3d·3d: A [g, m, k] · B [g, k, n]
    2d·2d: A [m, K_total] · B [K_total, n]   3d·2d: A [g, m, k] · B [k, N_total]
    """
    a, b = shape_arg(args, 0), shape_arg(args, 1)
    if not a or not b:
        return None
    if len(a) == 2 and len(b) in (2, 3):
        return FlopCount(2.0 * a[0] * a[1] * b[-1], "gemm")
    if len(a) == 3 and len(b) == 3:
        return FlopCount(2.0 * a[0] * a[1] * a[2] * b[2], "gemm")
    if len(a) == 3 and len(b) == 2:
        return FlopCount(2.0 * a[1] * a[2] * b[1], "gemm")
    return None


GEMMS: dict[str, Formula] = {
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
