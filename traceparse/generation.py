"""Generation traces: split each `generate()` step into prefill and one decode per new token.

Each call of the root module is one forward: the first in a profiler step is the prefill, every
later one a decode step. A trace without module events (a plain profiler around `generate()`)
has forwards all the same: each starts with the token embedding (`aten::embedding`) or, when the
decode step is compiled (static cache, CUDA graphs), with its compiled region — see `Spans`.

Per-token decode latency is what serving engineers ask for; decode is
memory-bound, so the number that matters is achieved bandwidth: the bytes of weights read per
token over the decode time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from traceparse.attribute import Attribution, ModuleCalls
from traceparse.flops.count import KINDS, FlopTable
from traceparse.flops.formulas import TENSOR_KINDS
from traceparse.kernels import FAMILIES, item_families
from traceparse.load import CPU_OP
from traceparse.rates import TENSOR_FAMILIES
from traceparse.rates import flops_known as flops_known_for
from traceparse.report import PhaseRow
from traceparse.scopes import BACKWARD

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}


@dataclass(frozen=True)
class Forwards:
    """The root module calls, each tagged prefill (rank 0 in its step) or decode."""

    root_of_call: np.ndarray  # per call: index of its root call
    roots: np.ndarray  # root call indices inside steps, by start time
    is_prefill: np.ndarray  # per root in `roots`


def root_of_calls(calls: ModuleCalls) -> np.ndarray:
    return calls.inherit(np.arange(len(calls)), calls.parent < 0)


def find_forwards(calls: ModuleCalls) -> Forwards:
    root_of_call = root_of_calls(calls)
    roots = np.flatnonzero((calls.parent < 0) & (calls.step >= 0))
    roots = roots[np.lexsort((calls.start[roots], calls.step[roots]))]
    steps = calls.step[roots]
    is_prefill = np.concatenate([[True], steps[1:] != steps[:-1]]) if roots.size else np.zeros(0, bool)
    return Forwards(root_of_call, roots, is_prefill)


@dataclass(frozen=True)
class Spans:
    """Forward passes found without module calls: CPU intervals [start, end), each from one
    forward's first marker (the token embedding, or a compiled region) to the next forward's."""

    start: np.ndarray
    end: np.ndarray
    step: np.ndarray
    is_prefill: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])


_COMPILED_REGION = re.compile(r"^Torch-Compiled Region")
_GRAPH_LAUNCHES = frozenset({"cudaGraphLaunch", "cudaGraphLaunch_v10000", "hipGraphLaunch"})


def marker_spans(attr: Attribution) -> Spans | None:
    """Forwards from markers: the outermost `aten::embedding` ops (only the vocabulary-sized
    table, when shapes tell: GPT-2 also embeds positions) and `Torch-Compiled Region` scopes."""
    ev, forest = attr.index.events, attr.index.forest
    if not len(forest):
        return None
    name_of_pos = ev.name[forest.rows]
    emb_ids = [i for i, n in enumerate(ev.names) if n == "aten::embedding"]
    reg_ids = [i for i, n in enumerate(ev.names) if _COMPILED_REGION.match(n)]
    is_emb = np.isin(name_of_pos, emb_ids) & (ev.kind[forest.rows] == CPU_OP)
    rows = _vocab_rows(ev, forest.rows[is_emb])
    if rows is not None:
        is_emb[np.flatnonzero(is_emb)] = rows
    marker = is_emb | np.isin(name_of_pos, reg_ids)
    graphs_only = not marker.any()
    if graphs_only:  # a decode loop replaying a captured graph: one launch per token, all decode
        marker = np.isin(name_of_pos, [i for i, n in enumerate(ev.names) if n in _GRAPH_LAUNCHES])
    nearest = np.append(forest.propagate(np.arange(len(forest)), marker), -1)
    outer = np.flatnonzero(marker & (nearest[forest.parent] < 0))
    step = attr.step_of_time(forest.start[outer])
    keep = step >= 0
    if not keep.any():
        return None
    outer, step = outer[keep], step[keep]
    order = np.lexsort((forest.start[outer], step))
    outer, step = outer[order], step[order]
    start = forest.start[outer]
    first = np.concatenate([[True], step[1:] != step[:-1]])
    last = np.concatenate([step[1:] != step[:-1], [True]])
    steps = attr.index.steps
    step_end = np.array([s.end for s in steps])[step] if steps else np.full(step.size, np.inf)
    end = np.where(last, step_end, np.append(start[1:], np.inf))
    return Spans(start, end, step, first & (not graphs_only))


def _vocab_rows(ev: Any, rows: np.ndarray) -> np.ndarray | None:
    """Per embedding op: is its table the largest (the vocabulary)? None when shapes are absent."""
    sizes = []
    for r in rows.tolist():
        shape = ev.shape_of(r)
        dims = _decode_json(shape.dims) if shape is not None else None
        first = dims[0] if isinstance(dims, list) and dims else None
        sizes.append(first[0] if isinstance(first, list) and first and type(first[0]) is int else -1)
    arr = np.array(sizes, np.int64)
    if not arr.size or arr.max() < 0:
        return None
    return arr == arr.max()


def _decode_json(raw: Any) -> Any:
    import msgspec

    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError):
        return None


def is_generation(attr: Attribution, mode: str | None) -> bool:
    """`mode`: the capture metadata's (None for a foreign trace)."""
    if mode == "generate":
        return True
    if mode is not None or (attr.items.phase == BACKWARD).any():
        return False
    fw = find_forwards(attr.calls)
    if fw.roots.size:
        return (fw.roots.size / max(1, attr.n_steps)) > 1.5
    spans = marker_spans(attr)
    return spans is not None and len(spans) / max(1, attr.n_steps) > 1.5


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def generation_summary(
    attr: Attribution,
    flops: FlopTable,
    block_index_of_call: np.ndarray,
    block_of_call: np.ndarray,
    meta: dict[str, Any],
) -> tuple[dict[str, Any], list[PhaseRow]]:
    calls, items, n_steps = attr.calls, attr.items, attr.n_steps
    fw = find_forwards(calls)
    if not fw.roots.size:
        spans = marker_spans(attr)
        if spans is not None:
            return _span_summary(attr, flops, spans, meta)
    item_root = np.full(len(items), -1, np.int64)
    has = items.call >= 0
    item_root[has] = fw.root_of_call[items.call[has]]
    tensor = np.isin(flops.kind, [KINDS.index(k) for k in TENSOR_KINDS]) & (flops.call >= 0)
    flop_root = np.full(flops.flops.size, -1, np.int64)
    flop_root[tensor] = fw.root_of_call[flops.call[tensor]]

    gpu_ms, wall_ms, gflops = [], [], []
    finish, last_step = -np.inf, None
    for r, prefill in zip(fw.roots.tolist(), fw.is_prefill.tolist(), strict=True):
        mine = item_root == r
        gpu_ms.append(float(items.dur[mine].sum()) / 1e3)
        last_gpu = float(items.end[mine].max()) if mine.any() else float(calls.end[r])
        # A token cannot start before the one before it finished: when the CPU runs ahead (graph
        # replays with no sync per token), its launch waits in the queue, and that wait is the
        # previous token's time, not this one's.
        begin = float(calls.start[r])
        if not prefill and int(calls.step[r]) == last_step:
            begin = max(begin, finish)
        end = max(float(calls.end[r]), last_gpu)
        wall_ms.append((end - begin) / 1e3)
        finish, last_step = end, int(calls.step[r])
        gflops.append(float(flops.flops[flop_root == r].sum()))
    pre = fw.is_prefill
    dec_wall = [w for w, p in zip(wall_ms, pre, strict=True) if not p]
    dec_gpu = [g for g, p in zip(gpu_ms, pre, strict=True) if not p]
    dec_flops = [f for f, p in zip(gflops, pre, strict=True) if not p]
    weight_bytes = _weight_bytes(meta)
    med_wall, med_gpu = _pct(dec_wall, 50), _pct(dec_gpu, 50)
    summary: dict[str, Any] = {
        "forwards_per_step": fw.roots.size / n_steps,
        "decode_steps_per_step": len(dec_wall) / n_steps,
        "new_tokens": meta.get("new_tokens"),
        "prefill_ms": float(np.mean([w for w, p in zip(wall_ms, pre, strict=True) if p])) if pre.any() else None,
        "prefill_gpu_ms": float(np.mean([g for g, p in zip(gpu_ms, pre, strict=True) if p])) if pre.any() else None,
        "decode_ms_median": med_wall,
        "decode_ms_p90": _pct(dec_wall, 90),
        "decode_gpu_ms_median": med_gpu,
        "decode_gpu_ms_p90": _pct(dec_gpu, 90),
        "decode_flops_per_token": float(np.median(dec_flops)) if dec_flops else None,
        "decode_tflops": (float(np.median(dec_flops)) / (med_wall * 1e9)) if dec_flops and med_wall else None,
        "weight_bytes": weight_bytes,
        "decode_bandwidth_gbps": weight_bytes / (med_wall * 1e6) if weight_bytes and med_wall else None,
        "decode_bandwidth_gpu_gbps": weight_bytes / (med_gpu * 1e6) if weight_bytes and med_gpu else None,
        "decode_block_ms": [],  # filled below, with the per-phase block times
        "times_basis": "wall: from the later of the root call's start and the previous token's end, to the "
        "later of its CPU end and its last kernel end, under the profiler; gpu: sum of its kernel durations",
    }
    rows = []
    block_ids = sorted(set(block_index_of_call[block_index_of_call >= 0].tolist()))
    item_block = np.full(len(items), -1, np.int64)
    item_block[has] = block_of_call[items.call[has]]
    for name, sel_root in (("prefill", fw.roots[pre]), ("decode", fw.roots[~pre])):
        in_phase = np.isin(item_root, sel_root)
        block_us = {b: float(items.dur[in_phase & (item_block == b)].sum()) for b in block_ids}
        if name == "decode" and dec_wall:
            summary["decode_block_ms"] = [
                {"index": b, "ms_per_token": us / 1e3 / len(dec_wall)} for b, us in block_us.items()
            ]
        rows.append(
            PhaseRow(
                phase=name,
                kernel_ms=float(items.dur[in_phase].sum()) / 1e3 / n_steps,
                flops=float(flops.flops[np.isin(flop_root, sel_root)].sum()) / n_steps if flops.has_shapes else None,
                unattributed_ms=0.0,
                blocks=[{"index": b, "gpu_ms": us / 1e3 / n_steps} for b, us in block_us.items()],
            )
        )
    return summary, rows


def _weight_bytes(meta: dict[str, Any]) -> float | None:
    params, dtype = meta.get("params"), meta.get("dtype")
    if not isinstance(params, int) or not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        return None
    return float(params * _DTYPE_BYTES[dtype])


def _span_summary(
    attr: Attribution, flops: FlopTable, spans: Spans, meta: dict[str, Any]
) -> tuple[dict[str, Any], list[PhaseRow]]:
    """The generation summary of a trace without module calls: items by the forward during
    which they were launched."""
    items, forest, n_steps = attr.items, attr.index.forest, attr.n_steps
    has = items.anchor >= 0
    when = np.where(has, np.append(forest.start, np.nan)[np.where(has, items.anchor, -1)], np.nan)
    k = np.searchsorted(spans.start, when, side="right") - 1
    ok = has & (k >= 0) & (when < spans.end[np.clip(k, 0, None)])
    item_span = np.where(ok, k, -1)
    tensor = np.isin(flops.kind, [KINDS.index(x) for x in TENSOR_KINDS])
    fk = np.searchsorted(spans.start, flops.start, side="right") - 1
    flop_span = np.where(tensor & (fk >= 0) & (flops.start < spans.end[np.clip(fk, 0, None)]), fk, -1)
    gpu_ms = np.bincount(item_span[ok], weights=items.dur[ok], minlength=len(spans)) / 1e3
    last_end = np.full(len(spans), -np.inf)
    np.maximum.at(last_end, item_span[ok], items.end[ok])
    # A token's latency is the longer of the CPU's cadence (one forward's start to the next's: a
    # launch-bound loop) and the GPU's (one forward's last kernel end to the next's: the CPU runs
    # ahead and waits at the end). A step's first forward counts its GPU time from its own start.
    gpu_end = np.maximum(last_end, spans.start)
    first = spans.is_prefill | np.concatenate([[True], spans.step[1:] != spans.step[:-1]])
    gpu_gap = gpu_end - np.where(first, spans.start, np.concatenate([[0.0], gpu_end[:-1]]))
    cpu_gap = np.where(_last_in_step(spans), 0.0, spans.end - spans.start)
    wall_ms = np.maximum(cpu_gap, gpu_gap) / 1e3
    gflops = np.bincount(flop_span[flop_span >= 0], weights=flops.flops[flop_span >= 0], minlength=len(spans))
    pre = spans.is_prefill
    dec_wall, dec_gpu, dec_flops = wall_ms[~pre].tolist(), gpu_ms[~pre].tolist(), gflops[~pre].tolist()
    med_wall, med_gpu = _pct(dec_wall, 50), _pct(dec_gpu, 50)
    # Decode FLOPs are known only if its tensor-core kernels ran under counted ops (not replays).
    ev = attr.index.events
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row])
    decode = ok & ~pre[np.clip(item_span, 0, None)]
    in_tensor = decode & np.isin(fam, [FAMILIES.index(f) for f in TENSOR_FAMILIES])
    flops_known = flops.has_shapes and flops_known_for(
        float(items.dur[in_tensor & ~flops.item_tensor].sum()), float(items.dur[decode].sum())
    )
    weight_bytes = _weight_bytes(meta)
    summary: dict[str, Any] = {
        "forwards_per_step": len(spans) / n_steps,
        "decode_steps_per_step": len(dec_wall) / n_steps,
        "new_tokens": meta.get("new_tokens"),
        "prefill_ms": float(wall_ms[pre].mean()) if pre.any() else None,
        "prefill_gpu_ms": float(gpu_ms[pre].mean()) if pre.any() else None,
        "decode_ms_median": med_wall,
        "decode_ms_p90": _pct(dec_wall, 90),
        "decode_gpu_ms_median": med_gpu,
        "decode_gpu_ms_p90": _pct(dec_gpu, 90),
        "decode_flops_per_token": float(np.median(dec_flops)) if dec_flops and flops_known else None,
        "decode_tflops": None,
        "weight_bytes": weight_bytes,
        "decode_bandwidth_gbps": weight_bytes / (med_wall * 1e6) if weight_bytes and med_wall else None,
        "decode_bandwidth_gpu_gbps": weight_bytes / (med_gpu * 1e6) if weight_bytes and med_gpu else None,
        "decode_block_ms": [],
        "forwards_from": "markers: each forward's token embedding or compiled region (no module events)",
        "times_basis": "wall: the longer of the CPU's cadence (a forward's first marker to the next's) and the "
        "GPU's (the previous forward's last kernel end to its own), under the profiler; gpu: sum of its "
        "kernel durations",
    }
    if summary["decode_flops_per_token"] and med_wall:
        summary["decode_tflops"] = summary["decode_flops_per_token"] / (med_wall * 1e9)
    rows = [
        PhaseRow(
            phase=name,
            kernel_ms=float(gpu_ms[sel].sum()) / n_steps,
            flops=float(gflops[sel].sum()) / n_steps if flops.has_shapes else None,
            unattributed_ms=0.0,
        )
        for name, sel in (("prefill", pre), ("decode", ~pre))
    ]
    return summary, rows


def _last_in_step(spans: Spans) -> np.ndarray:
    return np.concatenate([spans.step[1:] != spans.step[:-1], [True]]) if len(spans) else np.zeros(0, bool)
