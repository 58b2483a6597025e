"""`traceparse diff A B`: what got faster or slower between two runs, per block, module and kernel.

side.py     a run: a trace (through the pipeline) or a saved traceparse.report/1 JSON
tables.py   a trace's rows per dimension, with each row's time in every profiler step
compare.py  alignment, the noise threshold, the headline, top regressions (`Diff`)
render.py   table, Markdown and JSON (traceparse.diff/1); html.py: the page with the block chart
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable

from traceparse.diff.compare import MIN_MS, MIN_PCT, TOP_N, Change, Diff, Metric, compare
from traceparse.diff.side import DIFF_SCHEMA, Side, load_side

# `traceparse diff --fail-above PCT`: the gated time got slower by more than PCT % (beyond noise).
EXIT_REGRESSION = 8


def diff_paths(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    min_pct: float = MIN_PCT,
    min_ms: float = MIN_MS,
    top: int = TOP_N,
    progress: Callable[[str, float | None], None] | None = None,
) -> Diff:
    """Compare two runs (each a trace, a saved report JSON, or a folder holding one trace)."""
    from traceparse.errors import UsageError

    if min_pct < 0 or min_ms < 0:
        raise UsageError("--min-pct and --min-ms must be 0 or more")
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    say = progress or (lambda _stage, _fraction: None)
    say("reading A", None)
    side_a = load_side(a, progress)
    say("reading B", None)
    side_b = load_side(b, progress)
    say("comparing", None)
    return compare(side_a, side_b, min_pct, min_ms, top)


class _CallableModule(types.ModuleType):
    """`traceparse.diff(a, b)` is the public API (traceparse/__init__.py) and this package's name:
    importing the package rebinds `traceparse.diff` to it, replacing the function; so the package
    is callable too, the same call (as traceparse/scopes.py does for `traceparse.scopes`)."""

    def __call__(
        self, a: str | os.PathLike[str], b: str | os.PathLike[str], min_pct: float = MIN_PCT, min_ms: float = MIN_MS
    ) -> Diff:
        return diff_paths(a, b, min_pct, min_ms)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "DIFF_SCHEMA",
    "EXIT_REGRESSION",
    "Change",
    "Diff",
    "Metric",
    "Side",
    "compare",
    "diff_paths",
    "load_side",
]
