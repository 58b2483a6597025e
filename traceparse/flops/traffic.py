"""Bytes an op moves to and from device memory, from its recorded shapes and dtypes.

The model is the op's compulsory traffic: every tensor argument read once, every output written
once, at the size its dtype gives (`Input type`). That is what a roofline divides by — the least
an ideal kernel moves —, so achieved TB/s is a lower bound of what the kernels really moved
(re-reads the cache did not absorb, a composite op's intermediates, split-K partials are not
counted). Per family (formulas here and in traffic_tensor.py):

  * GEMMs: A, B and every other tensor argument (bias, FP8 scales) read, C written in the output
    dtype (`out_dtype` where the op has one, else A's; `_int_mm` writes int32).
  * Attention: Q, K, V read and O written once (GQA: K/V at their own head count). Flash kernels
    re-read K/V per query tile; the tiles of one wave share them through L2, so HBM sees K/V about
    once per wave: counting them once is the model (exact when a head's query tiles fit one wave).
    Backward reads Q, K, V, O, dO and writes dQ, dK, dV.
  * Convolutions: input, weight, bias read, output written (its shape from the FLOP geometry);
    backward reads dY, X, W and writes the gradients its output mask asks for.
  * Elementwise, comparisons, activations (what RoPE, SwiGLU and the Mamba2 reference scan are
    made of): each input read once at its own shape — a broadcast operand counts its own elements,
    not the output's —, the output written once at the broadcast shape, in the promoted dtype
    (the widest input with dimensions; bool for comparisons; self's for in-place ops).
  * Reductions: the input read, the output written with the reduced dimensions removed.
    Softmax/cumsum: input read, output of the same shape written.
  * Normalisations (layer/RMS/group/batch norm, fused or composite): input, weight, bias and
    running statistics read once, output written once — a composite RMSNorm's intermediates are
    not counted (the fused kernel would not move them).
  * Copies: source read, destination written (`copy_`, dtype casts, `.item()`); fills write only.
    Embedding / index_select / gather: the indices and the gathered rows read, the output written.

An op whose shapes or dtypes cannot be read (a `TensorList` argument without dtypes — `cat`, `stack`,
`_foreach_*` —, an unknown dtype) has unknown bytes (None), never 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from traceparse.flops.args import OpArgs, concrete_arg, int_arg, int_list_arg, numel

ByteFormula = Callable[[OpArgs], float | None]

# Bytes per element by the trace's `Input type`. FP4 (Float4_e2m1fn_x2) packs two values in one
# element of its tensor, whose shape counts packed elements: one byte each.
DTYPE_BYTES: dict[str, int] = {
    "double": 8,
    "float": 4,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1,
    "c10::Float8_e4m3fnuz": 1,
    "c10::Float8_e5m2fnuz": 1,
    "c10::Float8_e8m0fnu": 1,
    "c10::Float4_e2m1fn_x2": 1,
    "long int": 8,
    "int": 4,
    "short int": 2,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "unsigned short": 2,
    "unsigned int": 4,
    "unsigned long": 8,
    "c10::complex<float>": 8,
    "c10::complex<double>": 16,
    "c10::complex<c10::Half>": 4,
    "c10::qint8": 1,
    "c10::quint8": 1,
    "c10::qint32": 4,
}
# Argument types that are not tensors: no device traffic of their own.
_NOT_TENSOR = frozenset({"", "Scalar", "ScalarList", "GenericList", "Device", "Layout", "ScalarType", "None"})
# torch's ScalarType codes, as `out_dtype`/`dtype` arguments record them: code → bytes.
SCALAR_TYPE_BYTES = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 15: 2, 23: 1, 24: 1, 25: 1, 26: 1}


class Unknown(Exception):
    """An argument whose traffic cannot be read: the op's bytes are unknown."""


def tensors(args: OpArgs) -> list[tuple[int, list[int], int]]:
    """(argument index, shape, bytes per element) of each tensor argument; a 0-dim tensor has
    shape []. Raises Unknown on a tensor-like argument without a readable dtype."""
    out = []
    for i, d in enumerate(args.dims):
        t = args.types[i] if i < len(args.types) else None
        if not isinstance(t, str):
            raise Unknown
        if t in DTYPE_BYTES:
            if not isinstance(d, list) or not all(isinstance(x, int) for x in d):
                raise Unknown
            out.append((i, d, DTYPE_BYTES[t]))
        elif t not in _NOT_TENSOR or (t in ("", "None") and isinstance(d, list) and d):
            raise Unknown  # TensorList, an unknown dtype, or a tensor recorded without its type
    return out


def size_of(args: OpArgs, i: int) -> int | None:
    """Bytes per element of argument i (None: not a tensor of known dtype)."""
    t = args.types[i] if 0 <= i < len(args.types) else None
    return DTYPE_BYTES.get(t) if isinstance(t, str) else None


def read_bytes(ts: list[tuple[int, list[int], int]]) -> float:
    return float(sum(numel(s) * b for _, s, b in ts))


def scalar_type_bytes(args: OpArgs, i: int) -> int | None:
    """Bytes of a `ScalarType?` argument (None when absent or not a code we know)."""
    code = int_arg(args, i)
    return SCALAR_TYPE_BYTES.get(code) if code is not None else None


def guarded(formula: ByteFormula) -> ByteFormula:
    def run(args: OpArgs) -> float | None:
        try:
            return formula(args)
        except (Unknown, TypeError, ValueError, IndexError, ZeroDivisionError):
            return None  # a foreign trace's odd arguments: unknown, not a crash

    return run


# ---- elementwise, comparisons, reductions -----------------------------------------------------


def _names(text: str) -> list[str]:
    return text.split()


def _elementwise(args: OpArgs, *, out_bytes: int | None = None, in_place: bool = False) -> float | None:
    ts = tensors(args)
    if not ts:
        return None
    if in_place:
        out_shape, size = ts[0][1], ts[0][2]
    else:
        out_shape = list(np.broadcast_shapes(*(tuple(s) for _, s, _ in ts)))
        dimensioned = [b for _, s, b in ts if s] or [b for _, _, b in ts]
        size = max(dimensioned)
    return read_bytes(ts) + numel(out_shape) * (out_bytes or size)


def _reduction(dim_arg: int, out_bytes: int | None = None) -> ByteFormula:
    def formula(args: OpArgs) -> float | None:
        ts = tensors(args)
        if not ts or ts[0][0] != 0:
            return None
        shape, size = ts[0][1], ts[0][2]
        dims = int_list_arg(args, dim_arg)
        if dims is None:
            text = concrete_arg(args, dim_arg).strip()
            if text and text != "None":
                return None  # a dim we cannot read: the output's size is unknown
            dims = list(range(len(shape)))  # no dim: a full reduction
        kept = [n for j, n in enumerate(shape) if j not in {d % max(1, len(shape)) for d in dims}]
        return read_bytes(ts) + numel(kept) * (out_bytes or size)

    return formula


def _same_shape(out_float_arg: int = -1) -> ByteFormula:
    """softmax, cumsum: the output has the input's shape (fp32 when `half_to_float` is set)."""

    def formula(args: OpArgs) -> float | None:
        ts = tensors(args)
        if not ts or ts[0][0] != 0:
            return None
        wide = out_float_arg >= 0 and concrete_arg(args, out_float_arg).strip().lower() == "true"
        return read_bytes(ts) + numel(ts[0][1]) * (4 if wide else ts[0][2])

    return formula


_UNARY_BINARY = _names(
    "add sub mul div rsub exp exp2 expm1 log log1p log2 pow rsqrt sqrt neg reciprocal abs sign sin cos erf "
    "silu gelu relu sigmoid tanh softplus clamp clamp_min clamp_max hardtanh leaky_relu elu mish square "
    "where masked_fill maximum minimum fmod remainder floor ceil round trunc tril triu lerp addcmul addcdiv "
    "bitwise_not bitwise_and bitwise_or bitwise_xor silu_backward gelu_backward sigmoid_backward "
    "tanh_backward threshold_backward softplus_backward _softmax_backward_data _log_softmax_backward_data "
    "logical_not logical_and logical_or"
)
_COMPARISON = _names("eq ne lt le gt ge isnan isinf isfinite")
_IN_PLACE = [n + "_" for n in _UNARY_BINARY if not n.endswith("_data") and not n.endswith("backward")]
_REDUCTIONS = {"sum": 1, "mean": 1, "amax": 1, "amin": 1, "prod": 1, "logsumexp": 1, "any": 1, "all": 1, "norm": 2}
_REDUCTIONS_DIM_OPTIONAL = {"var": 1, "std": 1, "argmax": 1, "argmin": 1}


def _copy(args: OpArgs) -> float | None:
    """copy_(self, src): src read, self written (a broadcast src counts its own elements)."""
    ts = tensors(args)
    if len(ts) < 2 or ts[0][0] != 0 or ts[1][0] != 1:
        return None
    return read_bytes(ts[1:2]) + read_bytes(ts[:1])


def _fill(args: OpArgs) -> float | None:
    ts = tensors(args)
    if not ts or ts[0][0] != 0:
        return None
    return read_bytes(ts[:1]) + (read_bytes(ts[1:]) if len(ts) > 1 else 0.0)  # a 0-dim fill value is read


def _scalar_read(args: OpArgs) -> float | None:
    """`.item()`: the element read on the device and copied out."""
    ts = tensors(args)
    return 2.0 * read_bytes(ts) if ts else None


def _embedding(args: OpArgs) -> float | None:
    """embedding(weight [V, d], indices): indices read, one row of d per index read and written."""
    ts = {i: (s, b) for i, s, b in tensors(args)}
    if 0 not in ts or 1 not in ts or len(ts[0][0]) != 2:
        return None
    (w, wb), (idx, ib) = ts[0], ts[1]
    rows = numel(idx)
    return float(rows * ib + 2 * rows * w[1] * wb)


def _index_select(args: OpArgs) -> float | None:
    """index_select(self, dim, index): the output is self with dim cut to len(index)."""
    ts = {i: (s, b) for i, s, b in tensors(args)}
    dim = int_arg(args, 1)
    if 0 not in ts or 2 not in ts or dim is None or not ts[0][0]:
        return None
    (x, xb), (idx, ib) = ts[0], ts[2]
    out = list(x)
    out[dim % len(x)] = numel(idx)
    return float(numel(idx) * ib + 2 * numel(out) * xb)


def _gather(args: OpArgs) -> float | None:
    """gather(self, dim, index): one element of self read per index, the output (index's shape) written."""
    ts = {i: (s, b) for i, s, b in tensors(args)}
    if 0 not in ts or 2 not in ts:
        return None
    (_x, xb), (idx, ib) = ts[0], ts[2]
    return float(numel(idx) * (ib + 2 * xb))


def _norm(args: OpArgs) -> float | None:
    """A normalisation: every tensor argument read once, an output shaped like the input written."""
    ts = tensors(args)
    if not ts or ts[0][0] != 0:
        return None
    return read_bytes(ts) + numel(ts[0][1]) * ts[0][2]


def _norm_backward(weight_args: tuple[int, ...]) -> ByteFormula:
    """Norm backward (grad_out, input, …): all read once; grad_input and the gradients of the
    affine parameters written."""

    def formula(args: OpArgs) -> float | None:
        ts = {i: (s, b) for i, s, b in tensors(args)}
        if 0 not in ts or 1 not in ts:
            return None
        written = numel(ts[1][0]) * ts[1][1] + sum(numel(ts[i][0]) * ts[i][1] for i in weight_args if i in ts)
        return float(sum(numel(s) * b for s, b in ts.values()) + written)

    return formula


def elementwise_bytes() -> dict[str, ByteFormula]:
    out: dict[str, ByteFormula] = {}
    for name in _UNARY_BINARY:
        out[f"aten::{name}"] = _elementwise
    for name in _IN_PLACE:
        out[f"aten::{name}"] = lambda a: _elementwise(a, in_place=True)
    for name in _COMPARISON:
        out[f"aten::{name}"] = lambda a: _elementwise(a, out_bytes=1)
    for name, dim_arg in {**_REDUCTIONS, **_REDUCTIONS_DIM_OPTIONAL}.items():
        out[f"aten::{name}"] = _reduction(dim_arg, 8 if name.startswith("arg") else None)
    out["aten::softmax"] = out["aten::log_softmax"] = out["aten::cumsum"] = out["aten::cumprod"] = _same_shape()
    out["aten::_softmax"] = out["aten::_log_softmax"] = _same_shape(out_float_arg=2)
    out["aten::copy_"] = _copy
    out["aten::fill_"] = out["aten::zero_"] = _fill
    out["aten::_local_scalar_dense"] = _scalar_read
    out["aten::embedding"] = _embedding
    out["aten::index_select"] = _index_select
    out["aten::gather"] = _gather
    norms = "layer_norm native_layer_norm rms_norm _fused_rms_norm group_norm native_group_norm batch_norm"
    for name in (*norms.split(), "native_batch_norm", "_native_batch_norm_legit_no_training", "cudnn_batch_norm"):
        out[f"aten::{name}"] = _norm
    out["aten::native_layer_norm_backward"] = _norm_backward((5, 6))
    out["aten::_fused_rms_norm_backward"] = _norm_backward((4,))
    return out
