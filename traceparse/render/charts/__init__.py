"""Charts of a report: PNG files (`analyze --charts DIR`) and SVG images for the HTML report.

Data first, drawing second: each section declares the charts it has and exactly the numbers each
plots (`SectionSpec.charts`, taken from the Report, except the per-block split by kernel family,
which the report does not hold and `sections.blocks.block_family_ms()` sums from the Analysis).
One module here per chart draws it with matplotlib's object API on the Agg canvas (no pyplot, no
display), so tests can compare what is drawn with the report.

Block kinds have one color in every chart (KIND_COLORS); kernel families and phases have theirs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceparse.atomic import write_bytes_atomic
from traceparse.errors import TraceparseError
from traceparse.render.charts import blocks, families, module_types, modules, operators, phases, roofline
from traceparse.render.charts.axes import require_matplotlib
from traceparse.render.charts.style import FAMILY_COLORS, KIND_COLORS, OUTSIDE, PHASE_COLORS, kind_color
from traceparse.report import Report
from traceparse.sections import SECTIONS
from traceparse.sections.base import ChartData
from traceparse.sections.blocks import block_family_ms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from traceparse.api import Analysis

# Chart name (as the sections declare it) → the function that draws it.
_DRAW: dict[str, Callable[[ChartData], Figure]] = {
    "blocks_time_by_family": blocks.draw_blocks_by_family,
    "blocks_tflops": blocks.draw_blocks_tflops,
    "phases": phases.draw_phases,
    "module_types": module_types.draw_module_types,
    "slowest_modules": modules.draw_slowest_modules,
    "top_operators": operators.draw_top_operators,
    "kernel_families": families.draw_kernel_families,
    "roofline": roofline.draw_roofline,
}


def chart_data(report: Report, analysis: Analysis | None = None) -> list[ChartData]:
    """The charts this report supports, in display order; the per-family block chart needs `analysis`."""
    return [c for s in SECTIONS for c in s.charts(report, analysis)]


def draw_chart(chart: ChartData) -> Figure:
    """The chart as a matplotlib Figure on an Agg canvas (no pyplot state, no display)."""
    require_matplotlib()
    return _DRAW[chart.name](chart)


def render_chart(chart: ChartData, fmt: str = "png") -> bytes:
    """The chart as PNG or SVG bytes (deterministic: no dates, fixed SVG ids, text as paths)."""
    fig = draw_chart(chart)
    import matplotlib

    buf = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "traceparse", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def write_charts(report: Report, directory: str | Path, analysis: Analysis | None = None) -> list[Path]:
    """Write every chart as `<directory>/<name>.png` (atomically); returns the paths written."""
    require_matplotlib()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TraceparseError(f"--charts {directory}: exists and is not a directory")
    written = []
    for chart in chart_data(report, analysis):
        path = directory / f"{chart.name}.png"
        write_bytes_atomic(path, render_chart(chart, "png"))
        written.append(path)
    return written


__all__ = [
    "FAMILY_COLORS",
    "KIND_COLORS",
    "OUTSIDE",
    "PHASE_COLORS",
    "ChartData",
    "block_family_ms",
    "chart_data",
    "draw_chart",
    "kind_color",
    "render_chart",
    "write_charts",
]
