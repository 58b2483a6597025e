"""Stage 4, count FLOPs: per logical op from shapes, per module where shapes can't tell.

Each op with a formula counts once: only the outermost op of a nest that has a formula counts
(`aten::linear → aten::addmm`, `scaled_dot_product_attention → _cudnn_attention_forward`), so
nothing is counted twice. Mamba2 mixers get analytic scan FLOPs (see analytic.py) in place of
the shape-derived FLOPs of their own non-elementwise ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from traceparse.attribute import Attribution
from traceparse.flops.analytic import MAMBA2_MIXER, Mamba2Shape, mamba2_forward_flops
from traceparse.flops.formulas import (
    ATTENTION_BACKWARD_DEFAULT,
    ATTENTION_BACKWARD_OPS,
    FORMULAS,
    GEMM_OPS,
    TENSOR_KINDS,
    AttentionConvention,
    OpArgs,
)
from traceparse.flops.peaks import dtype_of_input_type
from traceparse.load import CPU_OP, ShapeArgs
from traceparse.scopes import BACKWARD, FORWARD

KINDS = ("gemm", "attention", "conv", "ssm", "elementwise")
_decode = msgspec.json.Decoder()


@dataclass(frozen=True)
class FlopTable:
    """Counted FLOPs, one row per counted op or analytic module term."""

    flops: np.ndarray  # float64
    kind: np.ndarray  # int8 index into KINDS
    call: np.ndarray  # module call (-1: none)
    phase: np.ndarray  # int8
    step: np.ndarray  # step index (-1 outside)
    start: np.ndarray  # CPU start time (µs) of the counted op (of the module call, for analytic terms)
    analytic: np.ndarray  # bool
    op_name: np.ndarray  # object: op name, or "analytic: <Class>"
    item_covered: np.ndarray  # per attribution item: its kernels' FLOPs are known
    item_tensor: np.ndarray  # per item: known and tensor (GEMM/attention/conv/SSM) work
    dtype: str | None  # dtype of most GEMM FLOPs (for MFU)
    convention: AttentionConvention
    attention_backward: float  # attention backward FLOPs as a multiple of forward
    has_shapes: bool  # the trace recorded shapes at all
    ssm_unknown_calls: int = 0  # Mamba2 mixer calls whose scan FLOPs are unknown (no config)
    pos: np.ndarray | None = None  # forest position of the counted op (-1: an analytic term)

    def total(self, kinds: tuple[str, ...] = TENSOR_KINDS, phase: int | None = None, step: int | None = None) -> float:
        keep = np.isin(self.kind, [KINDS.index(k) for k in kinds])
        if phase is not None:
            keep &= self.phase == phase
        if step is not None:
            keep &= self.step == step
        return float(self.flops[keep].sum())

    def per_call(self, n_calls: int, kinds: tuple[str, ...] = TENSOR_KINDS, phase: int | None = None) -> np.ndarray:
        keep = np.isin(self.kind, [KINDS.index(k) for k in kinds]) & (self.call >= 0)
        if phase is not None:
            keep &= self.phase == phase
        return np.bincount(self.call[keep], weights=self.flops[keep], minlength=n_calls)


def count_flops(
    attr: Attribution,
    metadata: dict[str, Any],
    convention: AttentionConvention = "causal",
    attention_backward: float = ATTENTION_BACKWARD_DEFAULT,
) -> FlopTable:
    ev, forest = attr.index.events, attr.index.forest
    names = ev.names
    formula_ids = np.array([n in FORMULAS for n in names], bool)
    name_of_pos = ev.name[forest.rows]
    is_formula = formula_ids[name_of_pos] & (ev.kind[forest.rows] == CPU_OP)
    nearest_formula = forest.propagate(np.arange(len(forest)), is_formula)
    parent = forest.parent
    above = np.where(parent >= 0, nearest_formula[np.where(parent >= 0, parent, 0)], -1)
    counted = np.flatnonzero(is_formula & (above < 0))

    # A model repeats the same op on the same shapes in every layer and step: evaluate each
    # distinct (op name, shape arguments) pair once (the loader numbers distinct shapes).
    name_ids = name_of_pos[counted].astype(np.int64)
    shape_ids = ev.shape[forest.rows[counted]].astype(np.int64)
    pairs = name_ids * (len(ev.shapes) + 1) + (shape_ids + 1)
    _, first, inverse = np.unique(pairs, return_index=True, return_inverse=True)
    seen = [
        _count_one(names[name_ids[j]], ev.shapes[shape_ids[j]], convention) if shape_ids[j] >= 0 else _UNKNOWN
        for j in first.tolist()
    ]
    scale = attention_backward / ATTENTION_BACKWARD_DEFAULT
    firsts = first.tolist()
    if scale != 1.0:  # the formulas count attention backward at the default multiple of forward
        seen = [
            (f * scale, k, dt) if names[name_ids[j]] in ATTENTION_BACKWARD_OPS else (f, k, dt)
            for (f, k, dt), j in zip(seen, firsts, strict=True)
        ]
    flops = np.array([f for f, _, _ in seen], np.float64)[inverse]
    kind = np.array([k for _, k, _ in seen], np.int8)[inverse]
    times = np.bincount(inverse, minlength=len(seen))
    gemm_dtypes: Counter[str] = Counter()
    for u in np.argsort(first, kind="stable").tolist():  # in order of first appearance, as Counter ties need
        f, k_kind, dt = seen[u]
        if k_kind >= 0 and dt:
            gemm_dtypes[dt] += int(f) * int(times[u])
    ok = kind >= 0
    counted, flops, kind = counted[ok], flops[ok], kind[ok]
    call = attr.call_of_pos(counted) if counted.size else np.empty(0, np.int64)
    phase = attr.phase_of_pos[counted]
    step = attr.step_of_time(forest.start[counted])
    start = forest.start[counted]
    op_name = np.array([*names, ""], dtype=object)[name_of_pos[counted]]
    analytic = np.zeros(counted.size, bool)
    pos = counted.astype(np.int64)

    # Mamba2 mixers: analytic scan + conv FLOPs replace their own non-elementwise op FLOPs.
    extra = _mamba_terms(attr, metadata, counted, call, kind, flops, phase)
    if extra is not None:
        drop, a_flops, a_call, a_phase, a_step, a_names = extra
        keep = ~drop
        counted, pos, flops, kind, call, phase, step, start, op_name, analytic = (
            counted[keep],
            pos[keep],
            flops[keep],
            kind[keep],
            call[keep],
            phase[keep],
            step[keep],
            start[keep],
            op_name[keep],
            analytic[keep],
        )
        flops = np.concatenate([flops, a_flops])
        kind = np.concatenate([kind, np.full(a_flops.size, KINDS.index("ssm"), np.int8)])
        call = np.concatenate([call, a_call])
        phase = np.concatenate([phase, a_phase]).astype(np.int8)
        step = np.concatenate([step, a_step])
        start = np.concatenate([start, attr.calls.start[a_call]])
        op_name = np.concatenate([op_name, a_names])
        analytic = np.concatenate([analytic, np.ones(a_flops.size, bool)])
        pos = np.concatenate([pos, np.full(a_flops.size, -1, np.int64)])
        analytic_calls = set(a_call.tolist())
    else:
        analytic_calls = set()

    # Coverage: an item is covered if an op counted (and kept) encloses its launch, or it is
    # the self work of an analytic module.
    tensor_kinds = [KINDS.index(k) for k in TENSOR_KINDS]
    own_cov = np.full(len(forest), -1, np.int8)
    own_cov[counted] = kind[: counted.size]
    cov_kind = forest.propagate(own_cov, own_cov >= 0)
    items = attr.items
    has = items.anchor >= 0
    k_item = np.where(has, np.append(cov_kind, -1)[np.where(has, items.anchor, -1)], -1)  # -1: a pad
    in_analytic = np.isin(items.call, list(analytic_calls)) if analytic_calls else np.zeros(len(items), bool)
    covered = (k_item >= 0) | in_analytic
    tensor = np.isin(k_item, tensor_kinds) | in_analytic
    # Mixers without an analytic term: their scan's kernels sit under elementwise ops, whose
    # FLOPs say nothing of the scan's: only their GEMMs (projections) count as covered.
    unknown_mixers = _mixer_calls(attr) - analytic_calls
    if unknown_mixers:
        calls = attr.calls
        is_mixer = np.zeros(len(calls), bool)
        is_mixer[list(unknown_mixers)] = True
        under = np.append(calls.inherit(np.where(is_mixer, 1, 0), is_mixer), 0)[items.call] > 0
        covered &= ~under | (k_item == KINDS.index("gemm"))
    return FlopTable(
        flops=flops,
        kind=kind,
        call=call,
        phase=phase,
        step=step,
        start=start,
        analytic=analytic,
        op_name=op_name,
        item_covered=covered,
        item_tensor=tensor,
        dtype=gemm_dtypes.most_common(1)[0][0] if gemm_dtypes else None,
        convention=convention,
        attention_backward=attention_backward,
        has_shapes=ev.shapes_recorded,
        ssm_unknown_calls=len(unknown_mixers),
        pos=pos,
    )


_UNKNOWN: tuple[float, int, str | None] = (0.0, -1, None)


def _count_one(name: str, shape: ShapeArgs, convention: AttentionConvention) -> tuple[float, int, str | None]:
    """(FLOPs, index into KINDS or -1 when unknown, dtype of a GEMM's first input or None)."""
    args = OpArgs(_safe(shape.dims), _safe(shape.concrete), _safe(shape.types))
    try:
        got = FORMULAS[name](args, convention)
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        got = None  # malformed shapes in a foreign trace: unknown, not a crash
    if got is None:
        return 0.0, -1, None
    dt = dtype_of_input_type(str(args.types[0])) if name in GEMM_OPS and args.types else None
    return got.flops, KINDS.index(got.kind), dt or None


def _safe(raw: Any) -> list[Any]:
    if raw is None:
        return []
    try:
        out = _decode.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # shape args are decoded lazily: not yet validated
        return []
    return out if isinstance(out, list) else []


def _mixer_calls(attr: Attribution) -> set[int]:
    code, classes = attr.calls.class_codes
    mixer = np.array([bool(MAMBA2_MIXER.search(c)) for c in classes], bool)
    return set(np.flatnonzero(mixer[code]).tolist()) if mixer.size else set()


def _mamba_terms(
    attr: Attribution,
    metadata: dict[str, Any],
    counted: np.ndarray,
    call: np.ndarray,
    kind: np.ndarray,
    flops: np.ndarray,
    phase: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    calls = attr.calls
    code, classes = calls.class_codes
    mixer = np.array([bool(MAMBA2_MIXER.search(c)) for c in classes], bool)[code]
    if not mixer.any():
        return None
    shape = Mamba2Shape.from_config(metadata.get("config") or {})
    if shape is None:
        return None
    batch = int(metadata.get("batch_size") or 1)
    gemm = KINDS.index("gemm")
    elementwise = KINDS.index("elementwise")
    # Tokens each mixer call saw: M of the first GEMM in one of its child calls (in_proj).
    tokens: dict[int, float] = {}
    for j in np.flatnonzero((kind == gemm) & (call >= 0)):
        parent_call = int(calls.parent[call[j]])
        if parent_call >= 0 and mixer[parent_call] and parent_call not in tokens and phase[j] == FORWARD:
            args = attr.index.events.shape_of(int(attr.index.forest.rows[counted[j]]))
            dims = _safe(args.dims if args is not None else None)
            first = next((d for d in dims if isinstance(d, list) and len(d) == 2), None)
            if first:
                tokens[parent_call] = float(first[0])
    # Only mixers that get an analytic term lose their own shape-derived FLOPs (their conv1d, any
    # matmul of a reference scan); a mixer whose token count is unknown keeps them.
    drop = (call >= 0) & np.isin(call, list(tokens)) & (kind != elementwise)
    a_flops, a_call, a_phase = [], [], []
    backward_calls = set(call[phase == BACKWARD].tolist()) | set(attr.items.call[attr.items.phase == BACKWARD].tolist())
    for c, m in tokens.items():
        length = max(1, round(m / batch))
        f = mamba2_forward_flops(shape, batch, length)
        a_flops.append(f)
        a_call.append(c)
        a_phase.append(FORWARD)
        if c in backward_calls:
            a_flops.append(2.0 * f)
            a_call.append(c)
            a_phase.append(BACKWARD)
    a_call_arr = np.array(a_call, np.int64)
    a_step = calls.step[a_call_arr] if a_call_arr.size else np.empty(0, np.int64)
    a_names = np.array([f"analytic: {calls.cls[c]} SSD scan + conv1d" for c in a_call], dtype=object)
    return drop, np.array(a_flops), a_call_arr, np.array(a_phase, np.int8), a_step, a_names
