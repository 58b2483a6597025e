"""`traceparse annotate`: the original trace plus tracks that show blocks and modules on the GPU.

The output opens in ui.perfetto.dev, chrome://tracing and TensorBoard's trace viewer like the
input; for every GPU stream it adds one process ("traceparse · GPU d stream s") holding:

  * "blocks" tracks: one slice per block call, from its first kernel's start to its last kernel's
    end on that stream, named "block i · kind";
  * "modules" tracks: one slice per module call, nested like the module tree;
  * counters "block" (series "TFLOP/s") and, where the trace records memcpy/memset bytes,
    "block copy" (series "GB/s": copy bytes only; kernels' own memory traffic is not in a
    torch.profiler trace). Perfetto names these tracks "block TFLOP/s" and "block copy GB/s".

A call that ran in more than one phase (forward and the backward attributed to it) gets one
slice per phase. Slice args carry self and inclusive GPU time (kernels + memcpy + memset, and
that split), the span, the count, FLOPs and TFLOP/s (inclusive FLOPs / inclusive GPU time, as in
the report).

Modules: `slices` (times, and the slices from the attribution), `lanes` (strict nesting per
track), `events` (the Chrome-trace events and counters), `write` (the output file).
"""

from traceparse.annotate.events import CATEGORY, COUNTERS, FIRST_NEW_ID, CounterSpec, Summary, annotation_events
from traceparse.annotate.lanes import NestingError, assign_lanes, check_nesting
from traceparse.annotate.slices import Slice, build_slices, to_ns, us_text
from traceparse.annotate.write import annotate_trace

__all__ = [
    "CATEGORY",
    "COUNTERS",
    "FIRST_NEW_ID",
    "CounterSpec",
    "NestingError",
    "Slice",
    "Summary",
    "annotate_trace",
    "annotation_events",
    "assign_lanes",
    "build_slices",
    "check_nesting",
    "to_ns",
    "us_text",
]
