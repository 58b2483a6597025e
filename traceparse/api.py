"""The library entry point: the whole pipeline in one call.

report = traceparse.analyze("trace.json.gz")
report.blocks_df, report.module_types_df, ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from traceparse.aggregate import build_report
from traceparse.attribute import Attribution, attribute
from traceparse.flops import FlopTable, count_flops
from traceparse.flops.formulas import AttentionConvention
from traceparse.index import build_index
from traceparse.load import Trace, load_trace
from traceparse.render import render
from traceparse.report import Report


@dataclass(frozen=True)
class Analysis:
    """Every stage's output, for tools (annotate, charts) that need more than the report."""

    trace: Trace
    attribution: Attribution
    flops: FlopTable
    report: Report


def run_pipeline(
    path: str | os.PathLike[str], attention: AttentionConvention = "causal", peak_tflops: float | None = None
) -> Analysis:
    trace = load_trace(path)
    attr = attribute(build_index(trace.events))
    flops = count_flops(attr, trace.metadata, attention)
    return Analysis(trace, attr, flops, build_report(trace, attr, flops, peak_tflops))


def analyze_path(
    path: str | os.PathLike[str], attention: AttentionConvention = "causal", peak_tflops: float | None = None
) -> Report:
    return run_pipeline(path, attention, peak_tflops).report


__all__ = ["Analysis", "analyze_path", "render", "run_pipeline"]
