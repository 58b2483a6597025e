"""What several sections read, computed once per report: per-step time of every module call
(self and inclusive, per phase), the blocks and which call is in which, the kernel family of every
GPU item, the steps' GPU busy time and span, the FLOP rates.

Eager fields are what most sections use; the cached properties are computed on first use (a
trace without blocks never infers them twice, a forward trace never summarizes generation).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from traceparse.attribute import Attribution
from traceparse.blocks import Blocks, block_of_calls, find_blocks
from traceparse.flops.count import FlopTable
from traceparse.flops.formulas import TENSOR_KINDS
from traceparse.flops.peaks import peak_tbps, peak_tflops
from traceparse.flops.roofline import OpTable, count_ops
from traceparse.generation import generation_summary, is_generation
from traceparse.inferred_blocks import InferredBlocks, infer_blocks
from traceparse.kernels import FAMILIES, item_families
from traceparse.load import Trace
from traceparse.rates import TENSOR_FAMILIES, Rates, StepTimes, compute_rates, step_times
from traceparse.report import PhaseRow
from traceparse.scopes import BACKWARD, FORWARD
from traceparse.sections.base import ms


@dataclass(frozen=True)
class Context:
    trace: Trace
    attr: Attribution
    flops: FlopTable
    peak: float | None  # TFLOP/s: the --peak-tflops override, else the device's for the dtype
    device: str | None
    in_steps: np.ndarray  # per GPU item: inside a profiler step
    call_in_steps: np.ndarray  # per module call: inside a profiler step
    self_all: np.ndarray  # per call: self time, µs per step, all phases
    incl_all: np.ndarray  # ... inclusive of sub-modules
    incl_fwd: np.ndarray
    incl_bwd: np.ndarray
    blocks: Blocks
    block_of_call: np.ndarray  # per call: its block (-1: outside every block)
    by_block: dict[int, list[int]]  # block → its calls in steps, in call order
    tensor_idx: list[int]  # FLOP kinds that count as tensor FLOPs
    call_flops: np.ndarray  # per call: inclusive tensor FLOPs per step
    call_cov_us: np.ndarray  # per call: inclusive time of items whose FLOPs are known
    kernel_us: float  # all GPU item time per step
    fam: np.ndarray  # per item: its kernel family (index into FAMILIES)
    uncounted: np.ndarray  # per item: tensor-core work no counted op gives FLOPs for
    call_uncounted_us: np.ndarray  # per call: inclusive time of such items
    peak_tbps: float | None = None  # TB/s: the --peak-tbps override, else the device's
    peak_override: float | None = None  # --peak-tflops as given (it also sets the per-op roofs)
    top: int = 20  # --top: rows of the slowest-modules and top-kernels tables

    @property
    def meta(self) -> dict[str, Any]:
        return self.trace.metadata

    @property
    def n_steps(self) -> int:
        return self.attr.n_steps

    @property
    def has_shapes(self) -> bool:
        return self.flops.has_shapes

    @property
    def gpu(self) -> bool:
        """GPU items were recorded (a CPU-only trace times CPU operators instead)."""
        return len(self.attr.index.gpu) > 0 and self.attr.mode != "cpu"

    def per_step_self(self, phase: int | None) -> np.ndarray:
        """Self time per call (µs per step) of the items of one phase, or of all."""
        return _per_step_self(self.attr, self.in_steps, phase)

    @cached_property
    def ops(self) -> OpTable:
        """Every op instance with GPU work in a step: its time, bytes, FLOPs (flops/roofline.py)."""
        return count_ops(self.attr, self.flops)

    def op_peak(self, dtype: str | None, tensor: bool) -> float | None:
        """The compute roof of one op: its dtype's dense peak for tensor-core work, the fp32 (vector)
        peak for the rest; --peak-tflops replaces the tensor roof."""
        if tensor:
            return self.peak_override or peak_tflops(self.device, dtype)
        return peak_tflops(self.device, "fp32") or self.peak_override

    @cached_property
    def call_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per call, inclusive: (bytes per step of the ops inside it whose bytes are known,
        µs per step of the kernels of those ops)."""
        ops, items, n = self.ops, self.attr.items, len(self.attr.calls)
        known = ~np.isnan(ops.bytes)
        ok = known & (ops.call >= 0)
        byts = np.bincount(ops.call[ok], weights=ops.bytes[ok], minlength=n) / self.n_steps
        it = (ops.item_op >= 0) & (items.call >= 0)
        it[it] = known[ops.item_op[it]]
        us = np.bincount(items.call[it], weights=items.dur[it], minlength=n) / self.n_steps
        return self.attr.calls.inclusive(byts), self.attr.calls.inclusive(us)

    @cached_property
    def is_generation(self) -> bool:
        return is_generation(self.attr, self.meta.get("mode"))

    @cached_property
    def generation(self) -> tuple[dict[str, Any] | None, list[PhaseRow]]:
        """The generation summary and its prefill/decode phase rows (None, [] outside generation)."""
        if not self.is_generation:
            return None, []
        return generation_summary(self.attr, self.flops, self.blocks.index_of_call, self.block_of_call, self.meta)

    @cached_property
    def inferred(self) -> InferredBlocks | None:
        """Blocks inferred from the repeating kernel sequence, when the trace has no module blocks.
        Not in generation traces: there the forward (one per token) repeats, not the layer."""
        if self.by_block or not len(self.attr.index.gpu) or self.attr.mode == "cpu" or self.is_generation:
            return None
        return infer_blocks(self.attr)

    @cached_property
    def mode(self) -> str:
        if self.is_generation:
            return "generate"
        return self.meta.get("mode") or ("train" if BACKWARD in set(self.attr.items.phase.tolist()) else "forward")

    @cached_property
    def walls(self) -> list[float]:
        """Each step's CPU span (ms); without steps, the trace's span."""
        steps, ev = self.attr.index.steps, self.attr.index.events
        return [s.wall_ms for s in steps] if steps else [ms(float((ev.ts + ev.dur).max() - ev.ts.min()))]

    @cached_property
    def per_step(self) -> StepTimes:
        items, steps = self.attr.items, self.attr.index.steps
        out = step_times(items.step, items.start, items.end, items.dur, len(steps) if steps else 1)
        # Invariant: each step's GPU busy time fits in its span on the device (a bug if not).
        assert (out.busy_us <= out.span_us * (1 + 1e-9) + 1e-6).all() or not self.gpu
        return out

    @cached_property
    def busy_ms(self) -> float | None:
        return ms(float(self.per_step.busy_us.mean())) if self.gpu else None

    @cached_property
    def span_ms(self) -> float | None:
        return ms(float(self.per_step.span_us.mean())) if self.gpu else None

    @cached_property
    def total_flops(self) -> float:
        f = self.flops
        return float(f.flops[np.isin(f.kind, self.tensor_idx) & (f.step >= 0)].sum()) / self.n_steps

    @cached_property
    def rates(self) -> Rates:
        timing = self.meta.get("timing") or {}
        return compute_rates(
            flops_counted=self.total_flops if self.has_shapes else None,
            uncounted_tensor_ms=ms(float(self.attr.items.dur[self.uncounted].sum()) / self.n_steps),
            kernel_ms=ms(self.kernel_us),
            busy_ms=self.busy_ms,
            span_ms=self.span_ms,
            wall_ms=float(np.mean(self.walls)),
            mode=self.mode,
            fwd_plain=timing.get("forward_ms_uninstrumented"),
            step_plain=timing.get("step_ms_uninstrumented"),
            peak=self.peak,
            device=self.device,
            dtype=self.flops.dtype,
        )


def make_context(
    trace: Trace,
    attr: Attribution,
    flops: FlopTable,
    peak_override: float | None,
    peak_tbps_override: float | None = None,
    top: int = 20,
) -> Context:
    items, calls = attr.items, attr.calls
    n_steps = attr.n_steps
    in_steps = items.step >= 0
    call_in_steps = calls.step >= 0
    inclusive = calls.inclusive

    self_all = _per_step_self(attr, in_steps, None)
    incl_all = inclusive(self_all)
    blocks = find_blocks(calls, trace.metadata.get("blocks_container"), incl_all)
    block_of_call = block_of_calls(calls, blocks.index_of_call)
    flops_in_steps = flops.step >= 0
    tensor_idx = [i for i, k in enumerate(("gemm", "attention", "conv", "ssm", "elementwise")) if k in TENSOR_KINDS]
    tmask = np.isin(flops.kind, tensor_idx) & flops_in_steps & (flops.call >= 0)
    call_flops = inclusive(np.bincount(flops.call[tmask], weights=flops.flops[tmask], minlength=len(calls)) / n_steps)
    cov_mask = in_steps & (items.call >= 0) & flops.item_covered
    call_cov_us = inclusive(
        np.bincount(items.call[cov_mask], weights=items.dur[cov_mask], minlength=len(calls)) / n_steps
    )
    ev = attr.index.events
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row])
    uncounted = in_steps & np.isin(fam, [FAMILIES.index(f) for f in TENSOR_FAMILIES]) & ~flops.item_tensor
    if attr.mode == "cpu":
        uncounted[:] = False
    with_call = uncounted & (items.call >= 0)
    call_uncounted_us = inclusive(
        np.bincount(items.call[with_call], weights=items.dur[with_call], minlength=len(calls)) / n_steps
    )
    by_block: dict[int, list[int]] = defaultdict(list)
    for c in np.flatnonzero((blocks.index_of_call >= 0) & call_in_steps):
        by_block[int(blocks.index_of_call[c])].append(int(c))
    device = _device_name(trace)
    return Context(
        trace=trace,
        attr=attr,
        flops=flops,
        peak=peak_override if peak_override else peak_tflops(device, flops.dtype),
        device=device,
        in_steps=in_steps,
        call_in_steps=call_in_steps,
        self_all=self_all,
        incl_all=incl_all,
        incl_fwd=inclusive(_per_step_self(attr, in_steps, FORWARD)),
        incl_bwd=inclusive(_per_step_self(attr, in_steps, BACKWARD)),
        blocks=blocks,
        block_of_call=block_of_call,
        by_block=dict(by_block),
        tensor_idx=tensor_idx,
        call_flops=call_flops,
        call_cov_us=call_cov_us,
        kernel_us=float(items.dur[in_steps].sum()) / n_steps,
        fam=fam,
        uncounted=uncounted,
        call_uncounted_us=call_uncounted_us,
        peak_tbps=peak_tbps_override if peak_tbps_override else peak_tbps(device),
        peak_override=peak_override or None,
        top=top,
    )


def _per_step_self(attr: Attribution, in_steps: np.ndarray, phase: int | None) -> np.ndarray:
    items = attr.items
    keep = in_steps & (items.call >= 0)
    if phase is not None:
        keep &= items.phase == phase
    return np.bincount(items.call[keep], weights=items.dur[keep], minlength=len(attr.calls)) / attr.n_steps


def _device_name(trace: Trace) -> str | None:
    for props in trace.device_properties:
        if props.get("name"):
            return str(props["name"])
    dev = (trace.metadata.get("device") or {}) if isinstance(trace.metadata.get("device"), dict) else {}
    return dev.get("name") or None
