"""Time bases and rates: the headline FLOPs, effective and kernel TFLOP/s, MFU — each right or null.

A rate is only as good as the time it divides by. The CPU runs ahead of the GPU, so a CPU span
(a root module call, a step's CPU wall) can be far shorter than the GPU work it launched — MFU
above 100 % — or, with Python frames in the trace, far longer. So the effective rate divides by
the uninstrumented time the capture measured (metadata), else by the GPU time the step's work
spanned on the device (first item start to last item end), never by a CPU span. The invariants
below are checked on every run: one that fails on a trace-measured basis is a bug (assert); one
that fails because two runs are compared (metadata timing vs the profiled kernels) becomes a note.

FLOPs are unknown, not small, when tensor-core work ran without an op whose shapes give its
FLOPs (CUDA-graph replays, compiled regions, custom kernels): a GEMM kernel with no counted op
above it. The counted part stays available as a lower bound (`flops_counted`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kernel families that do tensor-core work: time there without counted FLOPs makes FLOPs unknown.
TENSOR_FAMILIES = ("gemm", "attention", "conv")
# Share of kernel time in uncounted tensor work above which the FLOP total is not reported.
UNCOUNTED_LIMIT = 0.02


@dataclass(frozen=True)
class StepTimes:
    """Per profiler step, over the GPU items counted in it (µs)."""

    kernel_us: np.ndarray  # sum of durations
    busy_us: np.ndarray  # union of intervals
    span_us: np.ndarray  # first start to last end (0 for a step without items)
    items: np.ndarray  # counts


def union_us(start: np.ndarray, end: np.ndarray) -> float:
    """Total length of the union of intervals (GPU busy time)."""
    if start.size == 0:
        return 0.0
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order]
    running_end = np.maximum.accumulate(e)
    # A new busy segment starts where an interval begins after everything before it ended.
    new_seg = np.concatenate([[True], s[1:] > running_end[:-1]])
    seg_id = np.cumsum(new_seg) - 1
    seg_start = s[new_seg]
    seg_end = np.zeros(seg_start.size)
    np.maximum.at(seg_end, seg_id, e)
    return float((seg_end - seg_start).sum())


def rows_by(key: np.ndarray, n: int) -> list[np.ndarray]:
    """The rows of each group 0..n-1 (ascending within a group; rows with a key outside 0..n-1 in
    none): one stable sort, then slices — not a mask over every row per group, which costs
    steps × items on a long trace."""
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(n + 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(n)]


def step_times(step: np.ndarray, start: np.ndarray, end: np.ndarray, dur: np.ndarray, n_steps: int) -> StepTimes:
    kernel = np.bincount(step[step >= 0], weights=dur[step >= 0], minlength=n_steps)[:n_steps]
    count = np.bincount(step[step >= 0], minlength=n_steps)[:n_steps]
    busy = np.zeros(n_steps)
    span = np.zeros(n_steps)
    for s, mine in enumerate(rows_by(step, n_steps)):
        if mine.size:
            busy[s] = union_us(start[mine], end[mine])
            span[s] = float(end[mine].max() - start[mine].min())
    return StepTimes(kernel, busy, span, count)


def stream_overlap_us(step: np.ndarray, stream: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Time by which items of one stream overlap each other, summed over steps and streams.

    A stream runs its work in order, so a step's item time on one stream fits in that stream's
    span of the step; more means the trace's timestamps are off (or a tool merged streams)."""
    keep = np.flatnonzero(step >= 0)
    if not keep.size:
        return 0.0
    key = step[keep] * (int(stream[keep].max()) + 2) + (stream[keep] + 1)
    groups, code = np.unique(key, return_inverse=True)
    s, e = start[keep], end[keep]
    excess = 0.0
    for mine in rows_by(code.reshape(-1), groups.size):
        excess += float((e[mine] - s[mine]).sum()) - union_us(s[mine], e[mine])
    return excess


@dataclass(frozen=True)
class Rates:
    flops: float | None  # headline FLOPs per step; None when unknown
    flops_counted: float | None  # FLOPs of the ops with shapes (a lower bound when flops is None)
    gpu_span_ms: float | None  # mean per step: first GPU item start to last end
    effective_tflops: float | None
    effective_basis: str | None
    kernel_tflops: float | None  # flops / GPU busy time
    mfu: float | None
    notes: tuple[str, ...]


def compute_rates(
    *,
    flops_counted: float | None,
    uncounted_tensor_ms: float,
    kernel_ms: float,
    busy_ms: float | None,
    span_ms: float | None,
    wall_ms: float,
    mode: str | None,
    fwd_plain: float | None,
    step_plain: float | None,
    peak: float | None,
    device: str | None,
    dtype: str | None,
) -> Rates:
    notes: list[str] = []
    flops = flops_counted
    if flops == 0.0:
        # No GEMM, attention or convolution op with shapes ran: whatever the kernels did (custom
        # or Triton kernels, another device's work), 0 would claim to know it.
        notes.append("No operator with a FLOP formula (GEMM, attention, convolution) ran: FLOPs are unknown.")
        flops = None
    elif flops is not None and not flops_known(uncounted_tensor_ms, kernel_ms):
        notes.append(
            f"{uncounted_tensor_ms:.3f} ms per step of GEMM/attention/conv kernels "
            f"({100 * uncounted_tensor_ms / kernel_ms:.1f} % of kernel time) ran without an operator whose shapes "
            "give their FLOPs (CUDA-graph replays, compiled regions, custom kernels, or ops whose arguments the trace "
            "lacks): FLOPs, TFLOP/s and MFU "
            f"are unknown; the operators with shapes account for {flops / 1e9:.2f} GFLOPs per step "
            "(flops_counted, a lower bound)."
        )
        flops = None
    basis_ms, basis = _basis(mode, fwd_plain, step_plain, span_ms, wall_ms, gpu=busy_ms is not None)
    effective = flops / (basis_ms * 1e9) if flops is not None and basis_ms else None
    kernel_tflops = flops / (busy_ms * 1e9) if flops is not None and busy_ms else None
    if effective is not None and kernel_tflops is not None and effective > kernel_tflops * (1 + 1e-9):
        # A trace-measured basis spans at least the busy time: a violation there is a bug.
        assert basis.endswith("uninstrumented"), f"effective {effective} > kernel {kernel_tflops} on {basis}"
        notes.append(
            f"The uninstrumented time ({basis_ms:.3f} ms) is shorter than the GPU busy time under the profiler "
            f"({busy_ms:.3f} ms): kernels ran slower while profiled, so kernel TFLOP/s "
            f"({kernel_tflops:.2f}) understates them; effective TFLOP/s uses the uninstrumented time."
        )
    mfu = effective / peak if effective is not None and peak else None
    if mfu is not None and mfu > 1.0:
        notes.append(
            f"MFU would be {100 * mfu:.1f} % of the {peak:g} TFLOP/s {dtype or '?'} peak of "
            f"{device or 'this device'}: above 100 %, so that peak does not fit this run (FP8/FP4 GEMMs or "
            "TF32 against another dtype's peak, or a device the table names wrongly; --peak-tflops sets it). "
            "MFU is not reported."
        )
        mfu = None
    return Rates(
        flops,
        flops_counted,
        span_ms,
        effective,
        basis if effective is not None else None,
        kernel_tflops,
        mfu,
        tuple(notes),
    )


def _basis(
    mode: str | None,
    fwd_plain: float | None,
    step_plain: float | None,
    span_ms: float | None,
    wall_ms: float,
    gpu: bool,
) -> tuple[float | None, str]:
    """The time effective TFLOP/s divides by, and its name."""
    if mode in (None, "forward") and fwd_plain:
        return float(fwd_plain), "forward_ms_uninstrumented"
    if mode in ("train", "generate") and step_plain:
        return float(step_plain), "step_ms_uninstrumented"
    if gpu:
        return (span_ms or None), "gpu_span_ms"
    return wall_ms, "wall_ms"  # a CPU-only trace: the CPU did the work


def flops_known(uncounted_tensor: float, total: float) -> bool:
    """FLOPs of some work (the model, a block) are reported only when its tensor-core kernel time
    without counted FLOPs is within the limit."""
    return not (total > 0 and uncounted_tensor > UNCOUNTED_LIMIT * total)
