"""Generation traces: split each `generate()` step into prefill and one decode per new token.

Each call of the root module is one forward: the first in a profiler step is the prefill, every
later one a decode step. Per-token decode latency is what serving engineers ask for; decode is
memory-bound, so the number that matters is achieved bandwidth: the bytes of weights read per
token over the decode time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from traceparse.attribute import Attribution, ModuleCalls
from traceparse.flops.count import KINDS, FlopTable
from traceparse.flops.formulas import TENSOR_KINDS
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


def is_generation(attr: Attribution, mode: str | None) -> bool:
    if mode == "generate":
        return True
    if mode is not None or (attr.items.phase == BACKWARD).any():
        return False
    fw = find_forwards(attr.calls)
    return bool(fw.roots.size) and (fw.roots.size / max(1, attr.n_steps)) > 1.5


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
    item_root = np.full(len(items), -1, np.int64)
    has = items.call >= 0
    item_root[has] = fw.root_of_call[items.call[has]]
    tensor = np.isin(flops.kind, [KINDS.index(k) for k in TENSOR_KINDS]) & (flops.call >= 0)
    flop_root = np.full(flops.flops.size, -1, np.int64)
    flop_root[tensor] = fw.root_of_call[flops.call[tensor]]

    gpu_ms, wall_ms, gflops = [], [], []
    for r in fw.roots:
        mine = item_root == r
        gpu_ms.append(float(items.dur[mine].sum()) / 1e3)
        last_gpu = float(items.end[mine].max()) if mine.any() else float(calls.end[r])
        wall_ms.append((max(float(calls.end[r]), last_gpu) - float(calls.start[r])) / 1e3)
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
        "times_basis": "wall: root call start to the later of its CPU end and its last kernel end, under "
        "the profiler; gpu: sum of its kernel durations",
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
