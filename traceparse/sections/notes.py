"""Notes: what the reader should know to trust the tables — how the trace was attributed, what it
lacks, what was left out and why. Shown last, as a list (not in the CSV, which holds tables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.load import RUNTIME
from traceparse.rates import stream_overlap_us
from traceparse.recover import SOURCE_REPLAY
from traceparse.sections.base import Column, SectionSpec, TableSpec
from traceparse.sections.context import Context

# Complete-event categories that record no work of their own: not worth a note.
_QUIET_CATEGORIES = frozenset({"trace", "overhead", "cuda_sync", "cpu_instant_event", "python_function", "traceparse"})


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[str]:
    return _timing_notes(ctx) + _trace_notes(ctx)


def _timing_notes(ctx: Context) -> list[str]:
    """What the step times say about the trace's clocks: overlaps, the GPU lagging the CPU."""
    notes: list[str] = []
    items, ev, n_steps = ctx.attr.items, ctx.attr.index.events, ctx.n_steps
    if ctx.gpu:
        overlap = stream_overlap_us(items.step, ev.stream[items.event_row], items.start, items.end)
        if overlap > 1e-3 * max(ctx.kernel_us * n_steps, 1.0):
            notes.append(
                f"GPU items on one stream overlap each other by {overlap / 1e3 / n_steps:.3f} ms per step: the "
                "trace's timestamps put more work on a stream than its span holds, so kernel time exceeds busy time."
            )
    notes.extend(ctx.rates.notes)
    steps = ctx.attr.index.steps
    lagging = [s.number for s, busy in zip(steps, ctx.per_step.busy_us, strict=False) if busy / 1e3 > s.wall_ms]
    if ctx.gpu and lagging:
        notes.append(
            f"In {len(lagging)} step(s) the GPU was busy longer than the step's CPU span: work launched in a step "
            "runs on after the CPU has moved to the next (the GPU lags the CPU); GPU idle is over the GPU span."
        )
    if ctx.attr.mode == "cpu" and (ev.kind == RUNTIME).any():
        notes.append(
            f"The trace has {int((ev.kind == RUNTIME).sum())} device runtime calls but no GPU kernels: device "
            "activity was not recorded (or was recorded as another category); times are host-side only."
        )
    return notes


def _trace_notes(ctx: Context) -> list[str]:
    """How the trace was read: attribution mode, steps, what it lacks, what was left out."""
    notes = []
    trace, attr, flops, blocks, inferred = ctx.trace, ctx.attr, ctx.flops, ctx.blocks, ctx.inferred
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
    outside = float(attr.items.dur[~ctx.in_steps & ~tail].sum())
    if outside > 0:
        held = " (the reference pass's included)" if attr.index.reference_steps else ""
        notes.append(f"{outside / 1e3:.3f} ms of work lies outside every profiler step{held} and is not in the tables.")
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
    rec = attr.recovery
    if graph_items and rec is not None and rec.reference_items:
        replayed = rec.source == SOURCE_REPLAY
        share = float(attr.items.dur[replayed & rec.matched].sum()) / max(float(attr.items.dur[replayed].sum()), 1e-9)
        notes.append(
            f"{graph_items} GPU items came from CUDA-graph replays (cudaGraphLaunch): matched, kernel by kernel, to "
            f"the {rec.reference_items} kernels of the un-graphed reference pass, {100 * share:.1f} % of their time "
            "was given to the reference's modules (the rest stays with the call around the launch); their FLOPs "
            "are those of the reference ops their twins ran under, counted once per replay."
        )
    elif graph_items:
        notes.append(
            f"{graph_items} GPU items came from CUDA-graph replays (cudaGraphLaunch): they are attributed to the "
            "operator or module around the launch; no operator with shapes ran for them, so their FLOPs are unknown."
        )
    if index.reference_steps:
        notes.append(
            f"{index.reference_steps} profiler step(s) held the un-graphed reference pass (capture --cuda-graphs) "
            "and are left out of every per-step figure."
        )
    if rec is not None and rec.compile_scope is not None and rec.regions and not rec.matched_regions and graph_items:
        notes.append(
            f"Compiled regions (torch.compile, scope {rec.compile_scope or 'unknown'}) ran as CUDA-graph replays "
            "(mode reduce-overhead): their kernels launch no op to match to Inductor's record, so they stay with the "
            "call around the launch; capture --compile default --cuda-graphs gives replays analyze can match."
        )
    elif rec is not None and rec.compile_scope is not None:
        notes.append(
            f"Compiled regions (torch.compile, scope {rec.compile_scope or 'unknown'}): {rec.matched_regions} of "
            f"{rec.regions} graph calls matched to the graphs Inductor recorded at capture; their kernels are given "
            "to the modules Inductor generated them for (a kernel fusing several modules goes to their common "
            "ancestor: see the fusions table)." + _warmup(trace.metadata)
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
    return notes


def _warmup(meta: dict[str, Any]) -> str:
    """What compiling took before the profiled steps (capture's warm-up rounds), if recorded."""
    comp = meta.get("compile")
    rounds = comp.get("warmup") if isinstance(comp, dict) else None
    if not isinstance(rounds, list) or not rounds or not all(isinstance(r, dict) for r in rounds):
        return ""
    try:  # a hand-edited block must not break the report
        secs = sum(float(r.get("warmup_s", 0.0)) for r in rounds)
        n = sum(int(r.get("warmup_rounds", 0)) for r in rounds)
    except (TypeError, ValueError):
        return ""
    stable = all(r.get("stable") for r in rounds)
    tail = "nothing recompiled after it" if stable else "it was still recompiling when warm-up stopped"
    return f" Compiling took {secs:.1f} s in {n} warm-up round(s) before the profiled steps; {tail}."


def _graph_replayed(index: Any) -> int:
    """GPU items launched by a CUDA/HIP graph launch call."""
    ev, g = index.events, index.gpu
    graph_names = [i for i, n in enumerate(ev.names) if "GraphLaunch" in n]
    if not graph_names or not (g.launch >= 0).any():
        return 0
    launched = g.launch[g.launch >= 0]
    return int(np.isin(ev.name[index.forest.rows[launched]], graph_names).sum())


SECTION = SectionSpec(
    key="notes",
    compute=compute,
    table=TableSpec(
        title="notes",
        shown=lambda r: bool(r.notes),
        rows=lambda r, _lang: r.notes,
        layout="list",
        columns=(Column("", lambda n, _u: n),),
    ),
)
