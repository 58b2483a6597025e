"""`traceparse capture` and the training-loop API: scopes, metadata and timings from torch.

Needs torch (capture also transformers). Nothing in analyze imports this package, so `analyze`
runs without torch. Names load on first use: `traceparse.capture.scopes` works in a plain-torch
loop without transformers installed, which the capture pipeline (run.py) imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceparse.capture.options import CaptureOptions
    from traceparse.capture.run import CaptureResult, run_capture

__all__ = ["CaptureOptions", "CaptureResult", "run_capture"]


def __getattr__(name: str) -> Any:
    if name == "CaptureOptions":
        from traceparse.capture.options import CaptureOptions

        return CaptureOptions
    if name in ("CaptureResult", "run_capture"):
        from traceparse.capture import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
