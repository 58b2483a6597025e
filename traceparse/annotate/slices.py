"""Block and module slices on the GPU, from the attribution; times as exact integer nanoseconds.

Times are integers of nanoseconds throughout (the trace's own resolution), written as exact
decimal microseconds, so a viewer sees the same nesting that `lanes.check_nesting` verified.

GPU time here is what the report's "GPU time" is: kernels + memcpy + memset. TensorBoard's
overview calls only the first "Kernel", so each slice also carries the split (`kernels_only_ms`,
`memcpy_ms`, `memset_ms`, the report's General field names) to make the two comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from traceparse.blocks import find_blocks
from traceparse.errors import NotATraceError
from traceparse.flops.count import KINDS
from traceparse.flops.formulas import TENSOR_KINDS
from traceparse.load import KERNEL, MEMCPY, MEMSET
from traceparse.scopes import FORWARD, PHASE_NAMES

if TYPE_CHECKING:
    from traceparse.api import Analysis

# The GPU-time split carried by every slice: arg name → event kind (the report's field names).
SPLIT = (("kernels_only_ms", KERNEL), ("memcpy_ms", MEMCPY), ("memset_ms", MEMSET))


@dataclass(frozen=True)
class Slice:
    start_ns: int
    end_ns: int
    name: str
    depth: int  # module depth (for ordering parents before equal-span children)
    key: tuple[int, int, int]  # (stream group, phase, call)
    parent: tuple[int, int, int] | None
    args: dict[str, Any]


# ---- times ---------------------------------------------------------------------------------------


def to_ns(us: np.ndarray) -> np.ndarray:
    """Microseconds (as parsed from the trace's decimal text) → exact integer nanoseconds.

    Split off the integer part first: the fraction is exact in floating point, and ×1000 of a
    fraction stays within half a nanosecond of the written decimal up to ts ≈ 2^43 µs.
    """
    us = np.asarray(us, dtype=np.float64)
    whole = np.floor(us)
    return whole.astype(np.int64) * 1000 + np.round((us - whole) * 1000.0).astype(np.int64)


def us_text(ns: int) -> msgspec.Raw:
    """Exact decimal microseconds for a JSON number (Perfetto parses the digits, not a float)."""
    sign = "-" if ns < 0 else ""
    q, r = divmod(abs(int(ns)), 1000)
    return msgspec.Raw(f"{sign}{q}.{r:03d}".encode())


# ---- slices --------------------------------------------------------------------------------------


def _ancestor_pairs(start: np.ndarray, call: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, call) for every row and every call on the path from its own call up to the root."""
    rows_out, calls_out = [], []
    rows, cur = start, call
    while rows.size:
        rows_out.append(rows)
        calls_out.append(cur)
        up = parent[cur]
        ok = up >= 0
        rows, cur = rows[ok], up[ok]
    if not rows_out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows_out), np.concatenate(calls_out)


def build_slices(analysis: Analysis) -> tuple[dict[int, tuple[int, int]], list[Slice], list[Slice], list[str]]:
    """Stream groups (id → (device, stream)), module slices, block slices, and notes."""
    attr = analysis.attribution
    calls, items, ev = attr.calls, attr.items, attr.index.events
    if attr.mode == "cpu" or len(attr.index.gpu) == 0:
        raise NotATraceError("the trace has no GPU kernels: annotate adds GPU tracks, there is nothing to place")
    if len(calls) == 0:
        raise NotATraceError(  # an input problem (exit 3), not a usage one
            "the trace has no module calls (no traceparse scopes, no with_stack events): nothing to annotate; "
            "capture with `traceparse capture` (or with_stack=True)"
        )
    rows = items.event_row
    device = np.where(ev.device[rows] >= 0, ev.device[rows], ev.pid[rows])
    stream = np.where(ev.stream[rows] >= 0, ev.stream[rows], ev.tid[rows])
    pairs = np.unique(np.stack([device, stream], axis=1), axis=0)
    groups = {g: (int(d), int(s)) for g, (d, s) in enumerate(pairs)}
    group_of = {v: g for g, v in groups.items()}
    group = np.array([group_of[(int(d), int(s))] for d, s in zip(device, stream, strict=True)], np.int64)

    start_ns = to_ns(ev.ts[rows])
    end_ns = start_ns + to_ns(np.maximum(ev.dur[rows], 0.0))
    kind = ev.kind[rows]
    is_copy = np.isin(kind, (MEMCPY, MEMSET))
    nbytes = np.where(is_copy, ev.nbytes[rows], 0.0)

    n_calls, n_phases = len(calls), len(PHASE_NAMES)
    own = np.flatnonzero(items.call >= 0)
    it, cl = _ancestor_pairs(own, items.call[own], calls.parent)
    is_self = np.zeros(it.size, bool)
    is_self[: own.size] = True
    phase = items.phase[it].astype(np.int64)
    key = (group[it] * n_phases + phase) * n_calls + cl
    uniq, inv = np.unique(key, return_inverse=True)
    n = uniq.size
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, inv, start_ns[it])
    np.maximum.at(last, inv, end_ns[it])
    dur = items.dur[it]
    incl_us = np.bincount(inv, weights=dur, minlength=n)
    self_us = np.bincount(inv, weights=np.where(is_self, dur, 0.0), minlength=n)
    kernels = np.bincount(inv, minlength=n)
    split_us = {arg: np.bincount(inv, weights=np.where(kind[it] == k, dur, 0.0), minlength=n) for arg, k in SPLIT}
    copy_bytes = np.bincount(inv, weights=nbytes[it], minlength=n)

    # FLOPs and all-stream kernel time per (phase, call), inclusive: TFLOP/s as in the report.
    fl = analysis.flops
    tmask = np.isin(fl.kind, [KINDS.index(k) for k in TENSOR_KINDS]) & (fl.call >= 0)
    f_rows, f_calls = _ancestor_pairs(np.flatnonzero(tmask), fl.call[tmask], calls.parent)
    flops_pc = np.bincount(fl.phase[f_rows].astype(np.int64) * n_calls + f_calls, fl.flops[f_rows], n_phases * n_calls)
    time_pc = np.bincount(phase * n_calls + cl, dur, n_phases * n_calls)
    has_shapes = fl.has_shapes

    blocks = find_blocks(calls, analysis.trace.metadata.get("blocks_container"), analysis.attribution.inclusive_us())
    block_of = _block_of(calls.parent, calls.depth, blocks.index_of_call)
    root_label = _root_labels(analysis)

    modules: list[Slice] = []
    block_slices: list[Slice] = []
    for j, k in enumerate(uniq.tolist()):
        gp, c = divmod(k, n_calls)
        g, p = divmod(gp, n_phases)
        pc = p * n_calls + c
        f = float(flops_pc[pc]) if has_shapes else None
        tfl = f / (float(time_pc[pc]) * 1e6) if f and time_pc[pc] > 0 else None
        b = int(block_of[c])
        suffix = "" if p == FORWARD else f" [{PHASE_NAMES[p]}]"
        qual, cls = str(calls.qual[c]), str(calls.cls[c])
        args: dict[str, Any] = {
            "module": qual,
            "class": cls,
            "phase": PHASE_NAMES[p],
            "self_ms": round(float(self_us[j]) / 1e3, 6),
            "inclusive_ms": round(float(incl_us[j]) / 1e3, 6),
            **{arg: round(float(v[j]) / 1e3, 6) for arg, v in split_us.items()},
            "span_ms": (int(last[j]) - int(first[j])) / 1e6,
            "kernels": int(kernels[j]),
            "flops": f,
            "tflops": None if tfl is None else round(tfl, 4),
            "copy_bytes": float(copy_bytes[j]),
            "step": int(calls.step[c]),
        }
        if b >= 0:
            args["block"] = b
            args["block_kind"] = blocks.kinds.get(b, "other")
        if c in root_label:
            args["forward"] = root_label[c]
            suffix += f" · {root_label[c]}"
        par = int(calls.parent[c])
        common = (int(first[j]), int(last[j]))
        modules.append(
            Slice(*common, qual + suffix, int(calls.depth[c]), (g, p, c), (g, p, par) if par >= 0 else None, args)
        )
        if blocks.index_of_call[c] >= 0:
            idx = int(blocks.index_of_call[c])
            name = f"block {idx} · {blocks.kinds.get(idx, 'other')}{suffix}"
            block_slices.append(Slice(*common, name, 0, (g, p, c), None, args))
    notes = []
    if not has_shapes:
        notes.append("no Input Dims in the trace: FLOPs and TFLOP/s are unknown (null)")
    return groups, modules, block_slices, notes


def _block_of(parent: np.ndarray, depth: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = index.copy()
    for d in range(int(depth.max()) + 1 if depth.size else 0):
        at = np.flatnonzero((depth == d) & (out < 0) & (parent >= 0))
        out[at] = out[parent[at]]
    return out


def _root_labels(analysis: Analysis) -> dict[int, str]:
    """Generate traces: root call → "prefill" / "decode N" (the report's split)."""
    if analysis.report.generation is None:
        return {}
    from traceparse.generation import find_forwards

    fw = find_forwards(analysis.attribution.calls)
    out: dict[int, str] = {}
    decode = 0
    for root, pre in zip(fw.roots.tolist(), fw.is_prefill.tolist(), strict=True):
        decode = 0 if pre else decode + 1
        out[int(root)] = "prefill" if pre else f"decode {decode}"
    return out
