"""traceparse: where a transformer's forward (and backward) time goes, from a torch.profiler trace."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceparse.diff import Diff
    from traceparse.report import Report

__version__ = "0.1.0"


def analyze(path: str, attention: str = "causal", peak_tflops: float | None = None) -> Report:
    """Analyze a trace file; returns a `traceparse.report.Report` (DataFrames via `*_df`)."""
    from traceparse.api import analyze_path

    return analyze_path(path, attention, peak_tflops)  # type: ignore[arg-type]  # validated by the formulas


def diff(
    a: str | os.PathLike[str], b: str | os.PathLike[str], min_pct: float | None = None, min_ms: float | None = None
) -> Diff:
    """What changed between two runs (each a trace, a saved report JSON, or a folder holding one
    trace): a `traceparse.diff.Diff`; DataFrames via `.frames()` or `.blocks_df`, `.modules_df`, …
    `min_pct`, `min_ms`: the noise floor (default traceparse.diff.compare.MIN_PCT, MIN_MS)."""
    from traceparse.diff import diff_paths
    from traceparse.diff.compare import MIN_MS, MIN_PCT

    return diff_paths(a, b, MIN_PCT if min_pct is None else min_pct, MIN_MS if min_ms is None else min_ms)


# The training-loop API (README "In your own training loop"). torch is imported on first call, so
# `import traceparse` and `traceparse analyze` never load it. `traceparse.scopes(model)` is the
# callable module traceparse/scopes.py (that name is also a submodule's); `module_scopes` is the
# same, typed as a function.


def module_scopes(model: Any) -> AbstractContextManager[None]:
    """`with traceparse.module_scopes(model):` a named scope around every module call."""
    from traceparse.capture.scopes import module_scopes as scopes_cm

    return scopes_cm(model)


def attach_metadata(prof: Any, model: Any, *, model_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Every export of `prof` carries the `traceparse` block of `model` (+ `extra`); returns the block."""
    from traceparse.capture.library import attach_metadata as attach

    return attach(prof, model, model_id=model_id, **extra)


def trace_handler(dir_name: str | os.PathLike[str], model: Any, **kwargs: Any) -> Callable[[Any], None]:
    """`on_trace_ready`: torch's tensorboard_trace_handler, with the `traceparse` block in each file."""
    from traceparse.capture.library import trace_handler as handler

    return handler(dir_name, model, **kwargs)


def time_uninstrumented(fn: Callable[[], object], **kwargs: Any) -> float:
    """Median ms of `fn()` without profiler or scopes (CUDA events on a GPU): the TFLOP/s basis."""
    from traceparse.capture.library import time_uninstrumented as timed

    return timed(fn, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "scopes":  # imported here only when asked for first; see traceparse/scopes.py
        return importlib.import_module("traceparse.scopes")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
