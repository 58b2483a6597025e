"""Stage 5, aggregate: attribution + FLOPs → the report's rows, per step.

Everything is averaged over the profiler steps found (a trace without steps is one step), so
no table ever mixes the totals of several steps. Items outside every step (the warm-up tail,
work after the last step) are left out of the per-step tables and counted in a note.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from traceparse.attribute import Attribution, factorize
from traceparse.blocks import Blocks, block_of_calls, find_blocks
from traceparse.flops.count import FlopTable
from traceparse.flops.formulas import EMBEDDING, TENSOR_KINDS
from traceparse.flops.peaks import peak_tflops
from traceparse.generation import generation_summary, is_generation
from traceparse.inferred_blocks import InferredBlocks, infer_blocks, inferred_rows
from traceparse.kernels import FAMILIES, item_families
from traceparse.load import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, Trace
from traceparse.rates import TENSOR_FAMILIES, compute_rates, flops_known, step_times, stream_overlap_us, union_us
from traceparse.report import (
    BlockRow,
    FamilyRow,
    General,
    ModuleRow,
    PhaseRow,
    Report,
    StepRow,
    TypeRow,
)
from traceparse.scopes import BACKWARD, FORWARD, OTHER_PHASE, PHASE_NAMES

SLOWEST = 20
# Complete-event categories that record no work of their own: not worth a note.
_QUIET_CATEGORIES = frozenset({"trace", "overhead", "cuda_sync", "cpu_instant_event", "python_function", "traceparse"})


def _ms(us: float) -> float:
    return us / 1e3


def _safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def build_report(
    trace: Trace,
    attr: Attribution,
    flops: FlopTable,
    peak_override: float | None = None,
) -> Report:
    meta = trace.metadata
    config: dict[str, Any] = meta.get("config") or {}
    index = attr.index
    items = attr.items
    n_steps = attr.n_steps
    in_steps = items.step >= 0
    notes: list[str] = []

    calls = attr.calls
    call_in_steps = calls.step >= 0

    # ---- time per call (per step) ------------------------------------------------------
    def per_step_self(phase: int | None) -> np.ndarray:
        keep = in_steps & (items.call >= 0)
        if phase is not None:
            keep &= items.phase == phase
        return np.bincount(items.call[keep], weights=items.dur[keep], minlength=len(calls)) / n_steps

    inclusive = calls.inclusive

    self_all = per_step_self(None)
    incl_all = inclusive(self_all)
    blocks = find_blocks(calls, meta.get("blocks_container"), incl_all)
    block_of_call = block_of_calls(calls, blocks.index_of_call)
    incl_fwd = inclusive(per_step_self(FORWARD))
    incl_bwd = inclusive(per_step_self(BACKWARD))
    flops_in_steps = flops.step >= 0
    tensor_idx = [i for i, k in enumerate(("gemm", "attention", "conv", "ssm", "elementwise")) if k in TENSOR_KINDS]
    tmask = np.isin(flops.kind, tensor_idx) & flops_in_steps & (flops.call >= 0)
    call_flops = inclusive(np.bincount(flops.call[tmask], weights=flops.flops[tmask], minlength=len(calls)) / n_steps)
    cov_mask = in_steps & (items.call >= 0) & flops.item_covered
    call_cov_us = inclusive(
        np.bincount(items.call[cov_mask], weights=items.dur[cov_mask], minlength=len(calls)) / n_steps
    )

    kernel_us = float(items.dur[in_steps].sum()) / n_steps
    has_shapes = flops.has_shapes
    total_flops = float(flops.flops[np.isin(flops.kind, tensor_idx) & flops_in_steps].sum()) / n_steps
    ew_idx = 4
    ew_flops = float(flops.flops[(flops.kind == ew_idx) & flops_in_steps].sum()) / n_steps
    analytic_flops = float(flops.flops[flops.analytic & flops_in_steps].sum()) / n_steps
    coverage = float(items.dur[in_steps & flops.item_covered].sum()) / n_steps / kernel_us if kernel_us else None

    device = _device_name(trace)
    peak = peak_override if peak_override else peak_tflops(device, flops.dtype)
    mode = meta.get("mode") or _infer_mode(attr)

    ev = index.events
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row])
    # Tensor-core work whose FLOPs no counted op gives: per call, and in all (per step).
    uncounted = in_steps & np.isin(fam, [FAMILIES.index(f) for f in TENSOR_FAMILIES]) & ~flops.item_tensor
    if attr.mode == "cpu":
        uncounted[:] = False
    call_uncounted_us = inclusive(
        np.bincount(
            items.call[uncounted & (items.call >= 0)],
            weights=items.dur[uncounted & (items.call >= 0)],
            minlength=len(calls),
        )
        / n_steps
    )

    # ---- blocks ---------------------------------------------------------------------------
    params_by_block = _params_by_block(meta)
    block_rows: list[BlockRow] = []
    by_block: dict[int, list[int]] = defaultdict(list)
    for c in np.flatnonzero((blocks.index_of_call >= 0) & call_in_steps):
        by_block[int(blocks.index_of_call[c])].append(int(c))
    for b in sorted(by_block):
        cs = by_block[b]
        gpu_ms = _ms(float(incl_all[cs].sum()))
        known = has_shapes and flops_known(float(call_uncounted_us[cs].sum()), float(incl_all[cs].sum()))
        f = float(call_flops[cs].sum()) if known else None
        tfl = _safe_div(f, gpu_ms * 1e9) if f is not None and gpu_ms > 0 else None
        block_mfu = _safe_div(tfl, peak)
        block_rows.append(
            BlockRow(
                index=b,
                name=blocks.names.get(b, str(b)),
                kind=blocks.kinds.get(b, "other"),
                gpu_ms=gpu_ms,
                self_ms=_ms(float(self_all[cs].sum())),
                forward_ms=_ms(float(incl_fwd[cs].sum())),
                backward_ms=_ms(float(incl_bwd[cs].sum())),
                share_pct=100.0 * gpu_ms / _ms(kernel_us) if kernel_us else 0.0,
                flops=f,
                tflops=tfl,
                mfu=block_mfu if block_mfu is None or block_mfu <= 1.0 else None,
                flop_coverage=_safe_div(float(call_cov_us[cs].sum()), float(incl_all[cs].sum())),
                params=params_by_block.get(b),
            )
        )

    inferred = None
    # Not in generation traces: there the forward (one per token) repeats, not the layer.
    if not block_rows and len(index.gpu) and attr.mode != "cpu" and not is_generation(attr, meta.get("mode")):
        inferred = infer_blocks(attr)
        if inferred is not None:
            block_rows = inferred_rows(attr, flops, inferred, uncounted, kernel_us, peak)

    # ---- module types and modules ------------------------------------------------------------
    type_rows = _type_rows(calls, call_in_steps, self_all, incl_all, n_steps, kernel_us)
    module_rows = _module_rows(calls, call_in_steps, self_all, incl_all, n_steps, block_of_call)

    # ---- kernel families ---------------------------------------------------------------------
    # Block kind per item as a small int (0: outside blocks): comparing ints, not strings.
    kind_names = ["outside blocks", *sorted(set(blocks.kinds.values()))]
    kind_code = np.zeros(len(block_of_call) + 1, np.int64)  # the pad slot, read at call -1: 0
    for b, kind in blocks.kinds.items():
        kind_code[np.flatnonzero(block_of_call == b)] = kind_names.index(kind)
    kind_of_item = kind_code[items.call]
    family_rows = []
    for f_i, family in enumerate(FAMILIES):
        sel = in_steps & (fam == f_i)
        us = float(items.dur[sel].sum()) / n_steps
        if us <= 0 and not sel.any():
            continue
        by_kind = {
            kind_names[k]: _ms(float(items.dur[sel & (kind_of_item == k)].sum()) / n_steps)
            for k in np.unique(kind_of_item[sel]).tolist()
        }
        family_rows.append(
            FamilyRow(
                family,
                _ms(us),
                float(sel.sum()) / n_steps,
                100.0 * us / kernel_us if kernel_us else 0.0,
                dict(sorted(by_kind.items())),
            )
        )
    family_rows.sort(key=lambda r: -r.kernel_ms)

    # ---- phases ---------------------------------------------------------------------------------
    phase_rows = []
    for p, pname in enumerate(PHASE_NAMES):
        sel = in_steps & (items.phase == p)
        if not sel.any():
            continue
        p_self = per_step_self(p)
        p_incl = inclusive(p_self)
        pf_mask = np.isin(flops.kind, tensor_idx) & flops_in_steps & (flops.phase == p) & (flops.call >= 0)
        p_flops = inclusive(
            np.bincount(flops.call[pf_mask], weights=flops.flops[pf_mask], minlength=len(calls)) / n_steps
        )
        total_p_flops = float(flops.flops[np.isin(flops.kind, tensor_idx) & flops_in_steps & (flops.phase == p)].sum())
        phase_rows.append(
            PhaseRow(
                phase=pname,
                kernel_ms=_ms(float(items.dur[sel].sum()) / n_steps),
                flops=total_p_flops / n_steps if has_shapes else None,
                unattributed_ms=_ms(float(items.dur[sel & (items.call < 0)].sum()) / n_steps),
                blocks=[
                    {
                        "index": b,
                        "gpu_ms": _ms(float(p_incl[cs].sum())),
                        "flops": float(p_flops[cs].sum()) if has_shapes else None,
                    }
                    for b, cs in sorted(by_block.items())
                ],
            )
        )

    generation = None
    if is_generation(attr, meta.get("mode")):
        mode = "generate"
        generation, gen_rows = generation_summary(attr, flops, blocks.index_of_call, block_of_call, meta)
        phase_rows = gen_rows + [p for p in phase_rows if p.phase != "forward"]

    # Unattributed: work of forward/backward/other phases outside any module. Loss and
    # optimizer work has its own section, so it is attributed there, not lost.
    unattr_sel = in_steps & (items.call < 0) & np.isin(items.phase, [FORWARD, BACKWARD, OTHER_PHASE])
    unattributed_ms = _ms(float(items.dur[unattr_sel].sum()) / n_steps)

    # ---- general -------------------------------------------------------------------------------
    steps = index.steps
    walls = [s.wall_ms for s in steps] if steps else [_ms(float((ev.ts + ev.dur).max() - ev.ts.min()))]
    wall_ms = float(np.mean(walls))
    gpu = len(index.gpu) > 0 and attr.mode != "cpu"
    per_step = step_times(items.step, items.start, items.end, items.dur, len(steps) if steps else 1)
    busy_ms = _ms(float(per_step.busy_us.mean())) if gpu else None
    # Invariant: each step's GPU busy time fits in its span on the device (a bug if not).
    assert (per_step.busy_us <= per_step.span_us * (1 + 1e-9) + 1e-6).all() or not gpu
    if gpu:
        overlap = stream_overlap_us(items.step, ev.stream[items.event_row], items.start, items.end)
        if overlap > 1e-3 * max(kernel_us * n_steps, 1.0):
            notes.append(
                f"GPU items on one stream overlap each other by {overlap / 1e3 / n_steps:.3f} ms per step: the "
                "trace's timestamps put more work on a stream than its span holds, so kernel time exceeds busy time."
            )
    span_ms = _ms(float(per_step.span_us.mean())) if gpu else None
    roots = np.flatnonzero((calls.parent < 0) & call_in_steps)
    # The union, not the sum: with_stack traces can nest Python frames so that roots overlap.
    fwd_profiled = _ms(union_us(calls.start[roots], calls.end[roots]) / n_steps) if roots.size else None
    timing = meta.get("timing") or {}
    fwd_plain = timing.get("forward_ms_uninstrumented")
    step_plain = timing.get("step_ms_uninstrumented")
    rates = compute_rates(
        flops_counted=total_flops if has_shapes else None,
        uncounted_tensor_ms=_ms(float(items.dur[uncounted].sum()) / n_steps),
        kernel_ms=_ms(kernel_us),
        busy_ms=busy_ms,
        span_ms=span_ms,
        wall_ms=wall_ms,
        mode=mode,
        fwd_plain=fwd_plain,
        step_plain=step_plain,
        peak=peak,
        device=device,
        dtype=flops.dtype,
    )
    notes.extend(rates.notes)
    lagging = [s.number for s, busy in zip(steps, per_step.busy_us, strict=False) if busy / 1e3 > s.wall_ms]
    if gpu and lagging:
        notes.append(
            f"In {len(lagging)} step(s) the GPU was busy longer than the step's CPU span: work launched in a step "
            "runs on after the CPU has moved to the next (the GPU lags the CPU); GPU idle is over the GPU span."
        )
    if attr.mode == "cpu" and (ev.kind == RUNTIME).any():
        notes.append(
            f"The trace has {int((ev.kind == RUNTIME).sum())} device runtime calls but no GPU kernels: device "
            "activity was not recorded (or was recorded as another category); times are host-side only."
        )
    general = General(
        model=meta.get("model_id"),
        model_class=meta.get("model_class"),
        device=device,
        steps=len(steps) if steps else 1,
        hidden_size=_int_or_none(config.get("hidden_size")) or _hidden_from_trace(attr),
        seq_len=_int_or_none(meta.get("seq_len")),
        batch_size=_int_or_none(meta.get("batch_size")),
        num_blocks=len(block_rows),
        params=_int_or_none(meta.get("params")),
        params_linear=_int_or_none(meta.get("params_linear")),
        kernel_ms=_ms(kernel_us),
        gpu_busy_ms=busy_ms,
        wall_ms=wall_ms,
        wall_ms_min=float(min(walls)),
        wall_ms_max=float(max(walls)),
        forward_ms_profiled=fwd_profiled,
        forward_ms_uninstrumented=fwd_plain,
        forward_ms_scopes=timing.get("forward_ms_scopes"),
        step_ms_uninstrumented=step_plain,
        # Idle within the window the step occupied the GPU: its CPU span, or longer when the GPU lags.
        gpu_idle_pct=100.0 * (1.0 - busy_ms / max(wall_ms, span_ms or 0.0))
        if busy_ms is not None and max(wall_ms, span_ms or 0.0) > 0
        else None,
        flops=rates.flops,
        flops_elementwise=ew_flops if has_shapes else None,
        flops_analytic=analytic_flops if has_shapes else None,
        effective_tflops=rates.effective_tflops,
        effective_basis=rates.effective_basis,
        kernel_tflops=rates.kernel_tflops,
        mfu=rates.mfu,
        peak_tflops=peak,
        dtype=flops.dtype,
        flop_coverage=coverage if has_shapes else 0.0,
        attention_flops=flops.convention,
        mode=mode,
        unattributed_ms=unattributed_ms,
        gpu_span_ms=rates.gpu_span_ms,
        flops_counted=rates.flops_counted,
        attention_backward=flops.attention_backward,
        **_split_by_kind(ev.kind[items.event_row], items.dur, in_steps, n_steps, gpu),
    )
    notes += _notes(trace, attr, flops, n_steps, in_steps, blocks, inferred)
    return Report(
        source=trace.path,
        general=general,
        blocks=block_rows,
        module_types=type_rows,
        slowest_modules=module_rows,
        kernel_families=family_rows,
        phases=phase_rows,
        attribution=attr.mode,
        notes=notes,
        step_wall_ms=walls,
        generation=generation,
        top_operators=_top_operators(attr, in_steps, n_steps) if attr.mode in ("operators", "cpu") else [],
        block_stacks=[
            {
                "container": st.container,
                "blocks": st.blocks,
                "kinds": st.kinds,
                "gpu_ms": _ms(st.gpu_us),
                "share_pct": 100.0 * st.gpu_us / kernel_us if kernel_us else 0.0,
            }
            for st in blocks.stacks
        ],
        steps=[
            StepRow(
                number=steps[k].number if steps else None,
                wall_ms=walls[k],
                kernel_ms=_ms(float(per_step.kernel_us[k])),
                gpu_busy_ms=_ms(float(per_step.busy_us[k])) if gpu else None,
                gpu_span_ms=_ms(float(per_step.span_us[k])) if gpu else None,
                items=int(per_step.items[k]),
            )
            for k in range(len(walls))
        ],
    )


def _type_rows(
    calls: Any, in_steps: np.ndarray, self_ms: np.ndarray, incl: np.ndarray, n_steps: int, kernel_us: float
) -> list[TypeRow]:
    # Inclusive time of a type counts each call once, but not a call nested in one of its own type.
    same_type_parent = np.zeros(len(calls), bool)
    par = calls.parent
    has = par >= 0
    cls_code, _ = calls.class_codes
    same_type_parent[has] = cls_code[par[has]] == cls_code[has]
    at = np.flatnonzero(in_steps)
    code, types = factorize(calls.cls[at].tolist())
    n = len(types)
    # bincount adds in row order, as a running float sum would.
    counts = np.bincount(code, minlength=n)
    slf = np.bincount(code, weights=self_ms[at], minlength=n)
    outer = ~same_type_parent[at]
    tot = np.bincount(code[outer], weights=incl[at][outer], minlength=n)
    rows = []
    for k, t in enumerate(types):
        count = int(counts[k]) / n_steps
        total = _ms(float(tot[k]))
        rows.append(
            TypeRow(
                str(t),
                count,
                total,
                total / count if count else 0.0,
                _ms(float(slf[k])),
                100.0 * float(slf[k]) / kernel_us if kernel_us else 0.0,
            )
        )
    rows.sort(key=lambda r: (-r.self_ms, -r.total_ms))
    return rows


def _module_rows(
    calls: Any, in_steps: np.ndarray, self_ms: np.ndarray, incl: np.ndarray, n_steps: int, block_of_call: np.ndarray
) -> list[ModuleRow]:
    at = np.flatnonzero(in_steps)
    code, keys = factorize(list(zip(calls.qual[at].tolist(), calls.cls[at].tolist(), strict=True)))
    n = len(keys)
    slf = np.bincount(code, weights=self_ms[at], minlength=n)
    inc = np.bincount(code, weights=incl[at], minlength=n)
    count = np.bincount(code, minlength=n)
    last = np.full(n, -1, np.int64)  # a module's block: that of its last call
    np.maximum.at(last, code, np.arange(at.size))
    blk = block_of_call[at][last].tolist()
    rows = [
        ModuleRow(
            str(q),
            str(t),
            _ms(float(slf[k])),
            _ms(float(inc[k])),
            int(count[k]) / n_steps,
            blk[k] if blk[k] >= 0 else None,
        )
        for k, (q, t) in enumerate(keys)
    ]
    rows.sort(key=lambda r: (-r.self_ms, -r.inclusive_ms))
    return rows[:SLOWEST]


def _top_operators(attr: Attribution, in_steps: np.ndarray, n_steps: int) -> list[dict[str, Any]]:
    """Operator-level fallback: time by the outermost CPU op around each item; backward items go
    to the forward operator they differentiate ("aten::linear (backward)")."""
    forest, ev = attr.index.forest, attr.index.events
    items = attr.items
    is_op = ev.kind[forest.rows] == CPU_OP
    start = items.op.copy()
    has_anchor = items.anchor >= 0
    bwd_op = np.full(len(items), -1, np.int64)
    bwd_op[has_anchor] = attr.backward_op[items.anchor[has_anchor]]
    is_bwd = bwd_op >= 0
    start[is_bwd] = bwd_op[is_bwd]
    top = _outermost_op(forest.parent, is_op, start)
    agg: dict[str, list[float]] = {}
    for i in np.flatnonzero(in_steps & (top >= 0)):
        name = ev.names[int(ev.name[forest.rows[top[i]]])] + (" (backward)" if is_bwd[i] else "")
        a = agg.setdefault(name, [0.0, 0.0])
        a[0] += float(items.dur[i])
        a[1] += 1
    rows: list[dict[str, Any]] = [
        {"operator": k, "kernel_ms": _ms(v[0]) / n_steps, "items": v[1] / n_steps} for k, v in agg.items()
    ]
    rows.sort(key=lambda r: -float(r["kernel_ms"]))
    return rows[:SLOWEST]


def _outermost_op(parent: np.ndarray, is_op: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Walk each position up while its parent is still a CPU op."""
    top = start.copy()
    if not parent.size:  # a GPU-only trace: no CPU side to walk
        return top
    while True:
        par = np.where(top >= 0, parent[np.where(top >= 0, top, 0)], -1)
        up = (par >= 0) & is_op[np.where(par >= 0, par, 0)]
        if not up.any():
            return top
        top = np.where(up, par, top)


def _notes(
    trace: Trace,
    attr: Attribution,
    flops: FlopTable,
    n_steps: int,
    in_steps: np.ndarray,
    blocks: Blocks,
    inferred: InferredBlocks | None,
) -> list[str]:
    notes = []
    index = attr.index
    if attr.mode == "cpu":
        notes.append("CPU-only trace (no GPU events): times are CPU operator self times, not kernel times.")
    if attr.mode == "with_stack":
        notes.append("No traceparse scopes: modules come from with_stack 'nn.Module:' events (instance names).")
    if attr.mode == "operators":
        notes.append(
            "No module scopes and no with_stack events: attribution falls back to operators; "
            "capture with `traceparse capture` (or with_stack=True) for module and block tables."
        )
    if not index.steps_found:
        notes.append("No ProfilerStep# annotations: the whole trace is treated as one step.")
    if index.incomplete_steps:
        notes.append(f"{index.incomplete_steps} incomplete ProfilerStep span(s) at the end were dropped.")
    tail = index.gpu.tail if attr.mode != "cpu" else np.zeros(len(attr.items), bool)
    if tail.any():
        notes.append(
            f"{int(tail.sum())} GPU items ({float(attr.items.dur[tail].sum()) / 1e3:.3f} ms) with no launch event "
            "started before their step's first launched item: work of the previous step (launched before the "
            "profiler recorded), left out of the step."
        )
    outside = float(attr.items.dur[~in_steps & ~tail].sum())
    if outside > 0:
        notes.append(f"{outside / 1e3:.3f} ms of work lies outside every profiler step and is not in the tables.")
    if not flops.has_shapes:
        notes.append("The trace has no Input Dims (record_shapes=False): FLOPs are unknown.")
    if trace.dropped_events:
        notes.append(f"{trace.dropped_events} complete events without a usable ts/dur were skipped.")
    notes.extend(trace.notes)
    if flops.analytic.any():
        notes.append("SSM (Mamba2) scan FLOPs are analytic, from the model config in the trace metadata.")
    if flops.ssm_unknown_calls:
        notes.append(
            f"{flops.ssm_unknown_calls} Mamba2 mixer call(s) have no SSD scan FLOPs: the trace has no model config "
            "(traceparse capture records it); FLOPs exclude the scan and its kernels count as not covered."
        )
    if inferred is not None:
        notes.append(
            f"No module events: {inferred.count} blocks inferred from the kernel sequence, which repeats every "
            f"{inferred.period} kernels (block kind 'inferred'); a block may start anywhere within a layer, and "
            "a first layer whose kernels differ (fused with the embedding) may be left out."
        )
    elif blocks.container is None and len(attr.calls):
        notes.append("No block container found: the per-block table is empty.")
    if len(blocks.stacks) > 1:
        others = ", ".join(f"{s.container} ({s.blocks} blocks)" for s in blocks.stacks[1:])
        notes.append(
            f"{len(blocks.stacks)} repeated block stacks: the block table shows {blocks.container}, which holds "
            f"the most GPU time; the others are in block_stacks: {others}."
        )
    graph_items = _graph_replayed(index)
    if graph_items:
        notes.append(
            f"{graph_items} GPU items came from CUDA-graph replays (cudaGraphLaunch): they are attributed to the "
            "operator or module around the launch; no operator with shapes ran for them, so their FLOPs are unknown."
        )
    unknown = [(c, n) for c, n in index.events.other_categories if c.lower() not in _QUIET_CATEGORIES]
    if unknown:
        listed = ", ".join(f"{c or '(no category)'} ×{n}" for c, n in unknown[:6])
        notes.append(
            f"Events of categories traceparse does not analyze: {listed}. Work they record (another device "
            "type, a range profiler) is not in the tables."
        )
    if trace.source_format == "array":
        notes.append("Trace in Chrome's JSON-array form (no metadata).")
    del n_steps
    return notes


def _split_by_kind(
    kind: np.ndarray, dur: np.ndarray, in_steps: np.ndarray, n_steps: int, gpu: bool
) -> dict[str, float | None]:
    """GPU time per step of kernels, memcpys and memsets apart (what a viewer's "Kernel" sums)."""
    out: dict[str, float | None] = {}
    for key, k in (("kernels_only_ms", KERNEL), ("memcpy_ms", MEMCPY), ("memset_ms", MEMSET)):
        out[key] = _ms(float(dur[in_steps & (kind == k)].sum()) / n_steps) if gpu else None
    return out


def _graph_replayed(index: Any) -> int:
    """GPU items launched by a CUDA/HIP graph launch call."""
    ev, g = index.events, index.gpu
    graph_names = [i for i, n in enumerate(ev.names) if "GraphLaunch" in n]
    if not graph_names or not (g.launch >= 0).any():
        return 0
    launched = g.launch[g.launch >= 0]
    return int(np.isin(ev.name[index.forest.rows[launched]], graph_names).sum())


def _params_by_block(meta: dict[str, Any]) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for row in meta.get("modules") or []:
        if isinstance(row, dict) and isinstance(row.get("block"), int):
            out[row["block"]] += int(row.get("params") or 0)
    return dict(out)


def _device_name(trace: Trace) -> str | None:
    for props in trace.device_properties:
        if props.get("name"):
            return str(props["name"])
    dev = (trace.metadata.get("device") or {}) if isinstance(trace.metadata.get("device"), dict) else {}
    return dev.get("name") or None


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _hidden_from_trace(attr: Attribution) -> int | None:
    ev = attr.index.events
    ids = [i for i, n in enumerate(ev.names) if n == EMBEDDING]
    if not ids:
        return None
    import msgspec

    for code in ev.shape[np.isin(ev.name, ids) & (ev.shape >= 0)].tolist():
        try:
            dims = msgspec.json.decode(ev.shapes[code].dims)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        first = dims[0] if isinstance(dims, list) and dims else None
        if isinstance(first, list) and len(first) == 2 and type(first[1]) is int and first[1] > 0:
            return first[1]
    return None


def _infer_mode(attr: Attribution) -> str:
    phases = set(attr.items.phase.tolist())
    return "train" if BACKWARD in phases else "forward"
