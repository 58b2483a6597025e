"""Elementwise and reduction FLOPs: one per output (or input, for reductions) element."""

from __future__ import annotations

from traceparse.flops.args import (
    AttentionConvention,
    FlopCount,
    Formula,
    OpArgs,
    numel,
)

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


ELEMENTWISE: dict[str, Formula] = {f"aten::{name}": _elementwise for name in _ELEMENTWISE}
