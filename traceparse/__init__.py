"""traceparse: where a transformer's forward (and backward) time goes, from a torch.profiler trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traceparse.report import Report

__version__ = "0.1.0"


def analyze(path: str, attention: str = "causal", peak_tflops: float | None = None) -> Report:
    """Analyze a trace file; returns a `traceparse.report.Report` (DataFrames via `*_df`)."""
    from traceparse.api import analyze_path

    return analyze_path(path, attention, peak_tflops)  # type: ignore[arg-type]  # validated by the formulas
