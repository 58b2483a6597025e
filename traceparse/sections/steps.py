"""Per step: each profiler step's wall time, GPU time, busy time and span (shown with 2+ steps)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.errors import UsageError
from traceparse.index import Index
from traceparse.report import StepRow
from traceparse.sections.base import Column, SectionSpec, TableSpec, integer, ms, num
from traceparse.sections.context import Context


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[StepRow]:
    steps, per_step, gpu = ctx.attr.index.steps, ctx.per_step, ctx.gpu
    return [
        StepRow(
            number=steps[k].number if steps else None,
            wall_ms=ctx.walls[k],
            kernel_ms=ms(float(per_step.kernel_us[k])),
            gpu_busy_ms=ms(float(per_step.busy_us[k])) if gpu else None,
            gpu_span_ms=ms(float(per_step.span_us[k])) if gpu else None,
            items=int(per_step.items[k]),
        )
        for k in range(len(ctx.walls))
    ]


def parse_steps(spec: str, n: int) -> list[int]:
    """The step indices a Python slice ("2:", "1:3", ":-1", "3") selects among n steps."""
    parts = spec.strip().split(":")
    try:
        nums = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        nums = []
    if not 1 <= len(nums) <= 3 or (len(nums) == 1 and nums[0] is None):
        raise UsageError(f"--steps {spec!r}: expected a slice such as 2: or 1:3 or 0")
    if len(nums) == 1:
        k = nums[0]
        assert k is not None
        if not -n <= k < n:
            raise UsageError(f"--steps {spec}: the trace has {n} profiler step(s)")
        return [k % n]
    if len(nums) == 3 and nums[2] == 0:
        raise UsageError(f"--steps {spec!r}: the slice step cannot be 0")
    return list(range(n))[slice(*nums)]


def select_steps(index: Index, spec: str) -> Index:
    """The index with only the profiler steps `spec` selects (--steps 2: skips warm-up steps); the
    work of the others is then outside every step, as a warm-up tail is."""
    if not index.steps_found:
        raise UsageError("--steps: the trace has no profiler steps (ProfilerStep#N) to select from")
    n = len(index.steps)
    kept = parse_steps(spec, n)
    if not kept:
        raise UsageError(f"--steps {spec}: selects none of the trace's {n} profiler step(s)")
    kept = sorted(set(kept))
    remap = np.full(n, -1, np.int64)
    remap[kept] = np.arange(len(kept))
    old = index.gpu.step
    step = np.where(old >= 0, remap[np.where(old >= 0, old, 0)], -1)
    gpu = dataclasses.replace(index.gpu, step=step)
    return dataclasses.replace(index, gpu=gpu, steps=tuple(index.steps[k] for k in kept))


SECTION = SectionSpec(
    key="steps",
    compute=compute,
    table=TableSpec(
        title="step_table",
        shown=lambda r: len(r.steps) > 1,
        rows=lambda r, _lang: r.steps,
        columns=(
            Column("step", lambda s, _u: "" if s.number is None else s.number),
            Column("wall ms", lambda s, _u: f"{s.wall_ms:.3f}"),
            Column("kernel ms", lambda s, _u: f"{s.kernel_ms:.3f}"),
            Column("busy ms", lambda s, u: num(s.gpu_busy_ms, "{:.3f}", u)),
            Column("span ms", lambda s, u: num(s.gpu_span_ms, "{:.3f}", u)),
            Column("items", lambda s, _u: integer(s.items, _u)),
        ),
    ),
)
