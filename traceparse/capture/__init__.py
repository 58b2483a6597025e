"""`traceparse capture`: run a model under torch.profiler with a scope around every module call.

Needs the [capture] extra (torch, transformers). Nothing else in traceparse imports this package,
so `analyze` runs without torch.
"""

from traceparse.capture.options import CaptureOptions
from traceparse.capture.run import CaptureResult, run_capture

__all__ = ["CaptureOptions", "CaptureResult", "run_capture"]
