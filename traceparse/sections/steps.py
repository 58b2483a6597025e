"""Per step: each profiler step's wall time, GPU time, busy time and span (shown with 2+ steps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traceparse.report import StepRow
from traceparse.sections.base import Column, SectionSpec, TableSpec, ms, num
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
            Column("items", lambda s, _u: s.items),
        ),
    ),
)
