"""Stage 5, aggregate: attribution + FLOPs → the report's rows, per step.

Everything is averaged over the profiler steps found (a trace without steps is one step), so
no table ever mixes the totals of several steps. Items outside every step (the warm-up tail,
work after the last step) are left out of the per-step tables and counted in a note.

Each section of the report is computed by its own module (`traceparse.sections`) from one shared
context; this stage only runs them and assembles the `Report`.
"""

from __future__ import annotations

from traceparse.attribute import Attribution
from traceparse.flops.count import FlopTable
from traceparse.load import Trace
from traceparse.report import Report
from traceparse.sections import compute_sections, make_context


def build_report(
    trace: Trace,
    attr: Attribution,
    flops: FlopTable,
    peak_override: float | None = None,
    peak_tbps: float | None = None,
    top: int = 20,
) -> Report:
    """`top`: rows of the slowest-modules and top-kernels tables."""
    ctx = make_context(trace, attr, flops, peak_override, peak_tbps, top)
    return Report(source=trace.path, attribution=attr.mode, step_wall_ms=ctx.walls, **compute_sections(ctx))
