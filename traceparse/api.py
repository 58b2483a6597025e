"""The library entry point: the whole pipeline in one call.

report = traceparse.analyze("trace.json.gz")
report.blocks_df, report.module_types_df, ...

Only the loader is imported up front: the later stages (and their libraries) are imported while
the loader's worker processes decode a large file, so their import time is not added to the wall.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from traceparse.flops.formulas import AttentionConvention, shapes_needed
from traceparse.load import Trace, load_trace

if TYPE_CHECKING:
    from traceparse.attribute import Attribution
    from traceparse.flops.count import FlopTable
    from traceparse.report import Report


@dataclass(frozen=True)
class Analysis:
    """Every stage's output, for tools (annotate, charts) that need more than the report."""

    trace: Trace
    attribution: Attribution
    flops: FlopTable
    report: Report


def _import_later_stages(render_format: str | None) -> None:
    import traceparse.aggregate
    import traceparse.flops.count  # noqa: F401
    from traceparse.render import prepare

    if render_format is not None:
        prepare(render_format)


def run_pipeline(
    path: str | os.PathLike[str],
    attention: AttentionConvention = "causal",
    peak_tflops: float | None = None,
    progress: Callable[[str, float | None], None] | None = None,
    render_format: str | None = None,
    attention_backward: float = 2.5,
    peak_tbps: float | None = None,
    top: int = 20,
    steps: str | None = None,
    source: str | None = None,
) -> Analysis:
    """`progress(stage, fraction or None)` hears of each stage (traceparse.progress.Progress shows
    it); `render_format`: the format the caller will render, whose libraries are then imported
    while the loader's workers decode; `peak_tflops`/`peak_tbps` replace the device table's roofs;
    `top`: rows of the slowest-modules and top-kernels tables; `steps`: a slice of the profiler
    steps to average over ("2:" skips two warm-up steps); `source`: the report's source instead
    of the path (stdin)."""
    say: Callable[[str, float | None], None] = progress or (lambda _stage, _fraction: None)
    trace = load_trace(
        path,
        lambda done, total: say("reading", done / total if total else None),
        shapes_needed,
        lambda: _import_later_stages(render_format),
    )
    from traceparse.aggregate import build_report
    from traceparse.attribute import attribute
    from traceparse.flops.count import count_flops
    from traceparse.index import build_index
    from traceparse.recover import recover_modules
    from traceparse.recover.replay_flops import add_replay_flops

    say("indexing", None)
    index = build_index(trace.events)
    if steps is not None:
        from traceparse.sections.steps import select_steps

        index = select_steps(index, steps)
    say("attributing", None)
    attr = attribute(index)
    attr = recover_modules(attr, trace.metadata)
    say("counting FLOPs", None)
    flops = add_replay_flops(count_flops(attr, trace.metadata, attention, attention_backward), attr)
    say("aggregating", None)
    report = build_report(trace, attr, flops, peak_tflops, peak_tbps, top=top)
    if source is not None:
        import dataclasses

        report = dataclasses.replace(report, source=source)
    return Analysis(trace, attr, flops, report)


def analyze_path(
    path: str | os.PathLike[str], attention: AttentionConvention = "causal", peak_tflops: float | None = None
) -> Report:
    return run_pipeline(path, attention, peak_tflops).report


__all__ = ["Analysis", "analyze_path", "run_pipeline"]
