"""Bytes per op and roofline verdicts: which bound (compute or memory) applies and how far below it
an op, a module or a block runs.

The unit is an op instance that launched GPU work: the outermost op with a byte formula around the
launch (`aten::linear → aten::addmm` counts at addmm; a composite `rms_norm` at rms_norm, its
pow/mean/mul kernels included), else the innermost CPU op that launched it (its bytes unknown).
An op's FLOPs are the counted FLOPs (all kinds, elementwise included) of the ops inside it; copies,
fills and gathers do none; other ops without a FLOP formula have unknown FLOPs. Time is the sum of
the op's kernels' durations.

Roofline (Williams, Waterman & Patterson 2009): at arithmetic intensity I = FLOPs / bytes a kernel
can reach at most min(P, I·B) FLOP/s for peak compute P and memory bandwidth B; below the ridge
I = P/B it is memory-bound, above compute-bound. "% of roofline" is achieved / min(P, I·B): for a
memory-bound op its TB/s over B, for a compute-bound one its TFLOP/s over P. Tensor-core ops (GEMM,
attention, convolution) are judged against the dense peak of their dtype; the rest against the
fp32 vector peak (elementwise arithmetic runs on the CUDA cores), which only moves the ridge.
Since the bytes are the compulsory traffic (traffic.py), data served from L2 can put an op above
the HBM roof: its % is then not reported (null), its TB/s is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from traceparse.attribute import Attribution
from traceparse.flops.args import OpArgs
from traceparse.flops.count import KINDS, FlopTable
from traceparse.flops.peaks import dtype_of_input_type
from traceparse.flops.traffic_tensor import BYTES
from traceparse.load import CPU_OP, ShapeArgs

# Ops that move data and compute nothing: their FLOPs are 0, known.
ZERO_FLOPS = frozenset(
    {
        "aten::copy_",
        "aten::fill_",
        "aten::zero_",
        "aten::_local_scalar_dense",
        "aten::embedding",
        "aten::index_select",
        "aten::gather",
    }
)
_TENSOR_KINDS = [KINDS.index(k) for k in ("gemm", "attention", "conv")]
_decode = msgspec.json.Decoder()


@dataclass(frozen=True)
class OpTable:
    """One row per op instance with GPU work in a profiler step; `item_op` maps attribution items to rows."""

    pos: np.ndarray  # forest position of the op
    name: np.ndarray  # object: the op's name
    name_id: np.ndarray  # int64: the op's name as an id into the events' names (for grouping)
    shape: np.ndarray  # its shape-arguments id (-1: none recorded)
    call: np.ndarray  # innermost module call around it (-1)
    gpu_us: np.ndarray  # its kernels' time
    bytes: np.ndarray  # float64, NaN: unknown
    flops: np.ndarray  # float64, NaN: unknown
    tensor: np.ndarray  # bool: does tensor-core work (GEMM/attention/conv FLOPs)
    dtype: np.ndarray  # object: peak-table dtype of its first input, or None
    item_op: np.ndarray  # per attribution item: its row here (-1: no op, or outside the steps)

    def __len__(self) -> int:
        return int(self.pos.shape[0])


def count_ops(attr: Attribution, flops: FlopTable) -> OpTable:
    ev, forest, items = attr.index.events, attr.index.forest, attr.items
    names = ev.names
    name_of_pos = ev.name[forest.rows]
    has_bytes = np.array([n in BYTES for n in names], bool)[name_of_pos] & (ev.kind[forest.rows] == CPU_OP)
    nearest = forest.propagate(np.arange(len(forest)), has_bytes)
    parent = forest.parent
    above = np.where(parent >= 0, nearest[np.where(parent >= 0, parent, 0)], -1)
    outermost = has_bytes & (above < 0)
    op_at = forest.propagate(np.arange(len(forest)), outermost)  # the outermost byte op over each position

    keep = (items.step >= 0) & (items.anchor >= 0)
    unit = np.full(len(items), -1, np.int64)
    if len(forest):
        unit[keep] = op_at[items.anchor[keep]]
        fallback = keep & (unit < 0)
        unit[fallback] = items.op[fallback]
    pos, item_op = np.unique(unit, return_inverse=True)
    if pos.size and pos[0] < 0:
        pos, item_op = pos[1:], item_op - 1
    item_op = np.where(unit >= 0, item_op, -1)
    gpu_us = np.bincount(item_op[item_op >= 0], weights=items.dur[item_op >= 0], minlength=pos.size)

    rows = forest.rows[pos]
    op_name = np.array([*names, ""], dtype=object)[name_of_pos[pos]] if pos.size else np.empty(0, object)
    shape = ev.shape[rows].astype(np.int64) if pos.size else np.empty(0, np.int64)
    name_id = name_of_pos[pos].astype(np.int64) if pos.size else np.empty(0, np.int64)
    byts, dtype = _bytes_and_dtypes(op_name, name_id, shape, ev.shapes)
    byts = _compiled_bytes(attr, pos, byts)

    # FLOPs: each counted FLOP row to the op unit above it.
    f_pos = flops.pos if flops.pos is not None else np.full(flops.flops.size, -1, np.int64)
    has_pos = f_pos >= 0
    row_of_pos = np.full(len(forest) + 1, -1, np.int64)
    row_of_pos[pos] = np.arange(pos.size)
    f_unit = np.full(f_pos.size, -1, np.int64)
    f_unit[has_pos] = row_of_pos[op_at[f_pos[has_pos]]]
    ok = f_unit >= 0
    op_flops = np.bincount(f_unit[ok], weights=flops.flops[ok], minlength=pos.size)
    counted = np.bincount(f_unit[ok], minlength=pos.size) > 0
    is_tensor = ok & np.isin(flops.kind, _TENSOR_KINDS)
    tensor = np.bincount(f_unit[is_tensor], minlength=pos.size) > 0
    zero = np.array([n in ZERO_FLOPS for n in op_name], bool)
    op_flops = np.where(counted, op_flops, np.where(zero, 0.0, np.nan))
    return OpTable(
        pos=pos,
        name=op_name,
        name_id=name_id,
        shape=shape,
        call=attr.call_of_pos(pos) if pos.size else np.empty(0, np.int64),
        gpu_us=gpu_us,
        bytes=byts,
        flops=op_flops,
        tensor=tensor,
        dtype=dtype,
        item_op=item_op,
    )


def _compiled_bytes(attr: Attribution, pos: np.ndarray, byts: np.ndarray) -> np.ndarray:
    """Fused Triton kernels of compiled regions have no shapes in the trace: their bytes are
    Inductor's own estimate, recorded at capture (traceparse.recover)."""
    rec = attr.recovery
    if rec is None or rec.site_of_pos is None or rec.site_bytes is None or not pos.size:
        return byts
    site = rec.site_of_pos[pos]
    known = site >= 0
    est = np.full(pos.size, np.nan)
    est[known] = rec.site_bytes[site[known]]
    return np.where(np.isnan(byts) & ~np.isnan(est), est, byts)


def _bytes_and_dtypes(
    op_name: np.ndarray, name_id: np.ndarray, shape: np.ndarray, shapes: Sequence[ShapeArgs]
) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct (op, shapes) evaluated once, as count.py does for FLOPs: a model repeats
    the same op on the same shapes in every layer and step."""
    if not op_name.size:
        return np.full(0, np.nan), np.empty(0, object)
    _, first, inverse = np.unique(name_id * (len(shapes) + 1) + (shape + 1), return_index=True, return_inverse=True)
    seen = [_one(str(op_name[j]), shapes[shape[j]] if shape[j] >= 0 else None) for j in first.tolist()]
    byts = np.array([b for b, _ in seen], np.float64)[inverse.reshape(-1)]
    dtype = np.array([d for _, d in seen], dtype=object)[inverse.reshape(-1)]
    return byts, dtype


def _one(name: str, shape: ShapeArgs | None) -> tuple[float, str | None]:
    formula = BYTES.get(name)
    if shape is None:
        return np.nan, None
    args = OpArgs(_safe(shape.dims), _safe(shape.concrete), _safe(shape.types))
    dt = dtype_of_input_type(str(args.types[0])) if args.types else None
    got = formula(args) if formula is not None else None
    return (np.nan if got is None else float(got)), dt


def _safe(raw: msgspec.Raw | None) -> list[Any]:
    if raw is None:
        return []
    try:
        out = _decode.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError):
        return []
    return out if isinstance(out, list) else []


@dataclass(frozen=True)
class Roofline:
    """Where some work sits on the device's roofline."""

    tflops: float | None  # achieved
    tbps: float | None  # achieved (compulsory bytes / time)
    intensity: float | None  # FLOPs per byte
    bound: str | None  # "memory" | "compute"
    roofline_pct: float | None  # achieved / attainable at this intensity, in %


def roofline(
    flops: float | None, byts: float | None, seconds: float, peak_tflops: float | None, peak_tbps: float | None
) -> Roofline:
    """Unknown inputs give null outputs, never 0: no bytes, no TB/s; no FLOPs, no intensity."""
    flops = None if flops is None or np.isnan(flops) else flops
    byts = None if byts is None or np.isnan(byts) else byts
    tflops = flops / seconds / 1e12 if flops is not None and seconds > 0 else None
    tbps = byts / seconds / 1e12 if byts is not None and seconds > 0 else None
    intensity = flops / byts if flops is not None and byts else None
    bound = pct = None
    if intensity is not None and peak_tbps:
        if intensity == 0 or (peak_tflops and intensity < peak_tflops / peak_tbps):
            bound = "memory"
            pct = 100.0 * tbps / peak_tbps if tbps is not None else None
        elif peak_tflops:
            bound = "compute"
            pct = 100.0 * tflops / peak_tflops if tflops is not None else None
    if pct is not None and pct > 100.0:
        pct = None  # above the HBM roof: L2-resident data, or a peak that does not fit the device
    return Roofline(tflops, tbps, intensity, bound, pct)
