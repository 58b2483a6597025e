"""Drawing helpers the charts share: an Agg figure, fast bar collections, block ticks, bar labels.

matplotlib is imported inside the functions: importing the charts costs nothing until one is drawn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.errors import TraceparseError
from traceparse.render.charts.style import DPI, kind_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TraceparseError("charts need matplotlib: pip install 'traceparse[charts]'") from None


def figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def block_width(n: int) -> float:
    """Figure width (inches) that keeps one labeled tick per block readable, 56+ blocks included."""
    return min(max(8.0, 2.5 + 0.2 * n), 40.0)


def block_ticks(ax: Axes, blocks: list[int]) -> None:
    step = max(1, math.ceil(len(blocks) / 100))
    ax.set_xticks(range(0, len(blocks), step))
    ax.set_xticklabels([str(b) for b in blocks[::step]], fontsize=7, rotation=90 if len(blocks) > 40 else 0)
    ax.set_xlim(-0.6, len(blocks) - 0.4)


def bars(
    ax: Axes, x: np.ndarray, heights: np.ndarray, bottom: np.ndarray | None, colors: Any, width: float, label: str = ""
) -> Any:
    """Vertical bars as one PolyCollection: one artist for 56+ bars (ax.bar makes one patch each, slowly)."""
    from matplotlib.collections import PolyCollection

    b = np.zeros(len(x)) if bottom is None else np.asarray(bottom, float)
    h = np.asarray(heights, float)
    left, right = np.asarray(x, float) - width / 2, np.asarray(x, float) + width / 2
    verts = np.stack(
        [np.stack([left, b], 1), np.stack([left, b + h], 1), np.stack([right, b + h], 1), np.stack([right, b], 1)],
        axis=1,
    )
    coll = PolyCollection(list(verts), facecolors=colors, edgecolors="none", label=label or None)
    ax.add_collection(coll)
    if len(x):
        ax.update_datalim(
            [(float(left.min()), float(min(b.min(), (b + h).min()))), (float(right.max()), float((b + h).max()))]
        )
    ax.autoscale_view()
    return coll


def kind_handles(kinds: list[str], extra: dict[str, str] | None = None) -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color=kind_color(k), label=(extra or {}).get(k, k)) for k in dict.fromkeys(kinds)]


def hbar_axes(n: int, base: float, per_row: float) -> tuple[Figure, Axes, np.ndarray]:
    """A horizontal-bar chart of n rows: the figure, its axes and the rows' y positions."""
    fig = figure(10.0, base + per_row * n)
    return fig, fig.subplots(), np.arange(n)


def hbar_finish(
    ax: Axes, y: np.ndarray, labels: list[str], title: str, xlabel: str, widest: Any, room: float, **label_style: Any
) -> None:
    """Row labels (first row on top), titles, grid, and room right of the widest bar for its label."""
    ax.set_yticks(y, labels, **label_style)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(max(widest, default=0.0), 1e-9) * room)


def short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def barh_labels(ax: Axes, y: np.ndarray, vals: list[float], fmt: str = "{:.3f}") -> None:
    for yi, v in zip(y, vals, strict=True):
        ax.text(v, float(yi), " " + fmt.format(v), va="center", ha="left", fontsize=7)
