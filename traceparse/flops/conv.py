"""Convolution FLOPs, forward and backward (see formulas.py)."""

from __future__ import annotations

from dataclasses import dataclass

from traceparse.flops.args import (
    AttentionConvention,
    FlopCount,
    Formula,
    OpArgs,
    bool_list_arg,
    flag_arg,
    int_arg,
    int_list_arg,
    numel,
    shape_arg,
)

# ---- convolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvSig:
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


def _conv_geometry(sig: ConvSig, args: OpArgs) -> _ConvGeometry | None:
    x, w = shape_arg(args, sig.x), shape_arg(args, sig.weight)
    if not x or not w or len(x) < 3 or len(w) != len(x):
        return None
    if not args.concrete:
        # torch < 1.13 recorded no Concrete Inputs: stride, padding and groups are unknown, and
        # defaults would silently count a stride-2 convolution 4x (wrong FLOPs, not unknown ones).
        return None
    spatial = len(x) - 2
    stride, pad, dil = (
        _per_dim(int_list_arg(args, i) or [d], spatial) for i, d in ((sig.stride, 1), (sig.pad, 0), (sig.dil, 1))
    )
    groups = int_arg(args, sig.groups) or 1
    kernel, in_sp = w[2:], x[2:]
    if sig.transposed >= 0 and flag_arg(args, sig.transposed):
        if x[1] != w[0]:
            return None
        out_pad = _per_dim(int_list_arg(args, sig.out_pad) or [0], spatial)
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


def _conv(sig: ConvSig) -> Formula:
    def formula(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
        g = _conv_geometry(sig, args)
        if g is None or any(o <= 0 for o in g.out_spatial):
            return None
        flops = 2.0 * g.macs
        if shape_arg(args, sig.bias):
            flops += g.n * g.c_out * numel(g.out_spatial)
        return FlopCount(flops, "conv")

    return formula


# aten::convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
#                            transposed, output_padding, groups, output_mask)
CONV_BACKWARD = ConvSig(x=1, weight=2, bias=-1, stride=4, pad=5, dil=6, transposed=7, out_pad=8, groups=9)


def _conv_backward(args: OpArgs, _c: AttentionConvention) -> FlopCount | None:
    """grad_input and grad_weight each cost one forward convolution; grad_bias a reduction."""
    g = _conv_geometry(CONV_BACKWARD, args)
    grad_out = shape_arg(args, 0)
    if g is None or not grad_out:
        return None
    mask = bool_list_arg(args, 10) or [True, True, False]
    flops = 2.0 * g.macs * (int(mask[0]) + int(len(mask) > 1 and mask[1]))
    if len(mask) > 2 and mask[2] and (int_list_arg(args, 3) or [0]) != [0]:
        flops += numel(grad_out)
    return FlopCount(flops, "conv")


CONVOLUTIONS: dict[str, Formula] = {
    # Convolutions count at aten::convolution, which every conv1d/2d/3d/conv_transpose*d call
    # goes through with explicit padding (conv*d take padding="same" as a string the trace
    # does not show) and the `transposed` flag; _convolution when called on its own.
    "aten::convolution": _conv(ConvSig()),
    "aten::_convolution": _conv(ConvSig()),
    "aten::convolution_backward": _conv_backward,
}
