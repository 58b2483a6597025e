"""Stage 1, load: a trace file → typed columns (numpy) + metadata.

Decoding is typed and selective: msgspec decodes each event into a small Struct that names only
the fields the report needs, and keeps shape arguments as raw JSON (`msgspec.Raw`, a zero-copy
view) to be decoded later only for the ops whose FLOPs we count. That is what makes a
million-event file cheaper to analyze than to `json.loads`.

  schema.py    event kinds, the `Events` columns and the `Trace` every later stage reads
  stream.py    every common layout (layout.py reads which), streamed in blocks decoded by worker
               processes (blocks.py)
  whole.py     what the streamed reader does not take (ns timestamps, string ids…), decoded at
               once, and every malformed file's error
  metadata.py  the capture's metadata block, type-checked
This module chooses between the readers and applies what both need (units, ranges, steps).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from traceparse.errors import NotATraceError
from traceparse.load import stream
from traceparse.load.metadata import clean_metadata
from traceparse.load.schema import (
    CPU_OP,
    GPU_KINDS,
    GPU_USER_ANNOTATION,
    KERNEL,
    MEMCPY,
    MEMSET,
    NO_ID,
    OTHER,
    PYTHON_FUNCTION,
    RUNTIME,
    USER_ANNOTATION,
    Events,
    ShapeArgs,
    ShapesFor,
    Trace,
    category_counts,
    kind_of_category,
    of_kinds,
)
from traceparse.load.whole import (
    TRACE_SUFFIXES,
    columns,
    decode,
    find_trace_in_dir,
    ns_offset,
    ns_to_us,
    read_bytes,
    sane_times,
)

__all__ = [
    "CPU_OP",
    "GPU_KINDS",
    "GPU_USER_ANNOTATION",
    "KERNEL",
    "MEMCPY",
    "MEMSET",
    "NO_ID",
    "OTHER",
    "PYTHON_FUNCTION",
    "RUNTIME",
    "TRACE_SUFFIXES",
    "USER_ANNOTATION",
    "Events",
    "ShapeArgs",
    "ShapesFor",
    "Trace",
    "category_counts",
    "find_trace_in_dir",
    "kind_of_category",
    "load_trace",
    "of_kinds",
]


_STEP_NAME = re.compile(r"^ProfilerStep#\d+$")


def _steps_as_annotations(ev: Events) -> None:
    """torch 1.8-1.10 wrote `ProfilerStep#N` as an "Operator": make it the annotation it is, so
    that no stage takes a step for the op that launched a kernel."""
    ids = [i for i, n in enumerate(ev.names) if _STEP_NAME.match(n)]
    if ids:
        rows = np.flatnonzero(np.isin(ev.name, ids) & (ev.kind == CPU_OP))
        ev.kind[rows] = USER_ANNOTATION


def load_trace(
    path: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
    shapes_for: ShapesFor = None,
    meanwhile: Callable[[], None] | None = None,
) -> Trace:
    """Read a Kineto/Chrome trace (.json or .json.gz, object or array form) into columns.

    `progress(bytes_read, file_size)` is called as a large file streams in (fast path only).
    `shapes_for(op_name)`: keep shape arguments only for ops it accepts (a module-level function:
    worker processes get it too); None keeps them for every op. `meanwhile()` is called once,
    while worker processes decode if there are any (the caller's own start-up work)."""
    p = Path(path)
    try:
        # Kineto's own layout, streamed; None: decode it whole here.
        fast = stream.load_columns(p, progress, shapes_for=shapes_for, meanwhile=meanwhile)
    except stream.DAMAGED:  # the whole-file reader reports it
        fast = None
    decoded, form = (fast.top, fast.form) if fast else decode(read_bytes(p), p)
    notes: list[str] = []
    if form == "array-unclosed":
        form = "array"
        notes.append("The JSON array had no closing bracket (allowed by the Chrome trace format).")
    if not fast and not decoded.traceEvents:
        raise NotATraceError(f"{p}: the trace has no events")
    try:
        offset = None if fast else ns_offset(decoded.traceEvents, decoded.displayTimeUnit, decoded.baseTimeNanoseconds)
        if offset is not None:
            ns_to_us(decoded.traceEvents, offset)
            notes.append("Timestamps and durations were in nanoseconds: converted to microseconds.")
        events, dropped = (fast.events, fast.dropped) if fast else columns(decoded.traceEvents, shapes_for)
    except OverflowError:
        raise NotATraceError(f"{p}: a timestamp or duration is out of range") from None
    events, out_of_range = sane_times(events)
    dropped += out_of_range
    _steps_as_annotations(events)
    if len(events) == 0:
        raise NotATraceError(f"{p}: no complete ('X') events with ts and dur: nothing to analyze")
    if not (events.kind != OTHER).any():
        found = ", ".join(f"{c or '(none)'} ×{n}" for c, n in events.other_categories[:5])
        raise NotATraceError(
            f"{p}: not a torch.profiler trace: none of its {len(events)} complete events has a category the "
            f"PyTorch profiler writes (cpu_op, kernel, …), so another tool wrote it (TensorFlow's profiler, "
            f"rocprof, a browser…); its categories: {found}"
        )
    metadata, meta_notes = clean_metadata(decoded.traceparse)
    notes += meta_notes
    cpu_side = (CPU_OP, USER_ANNOTATION, PYTHON_FUNCTION, RUNTIME)
    count = np.bincount(events.kind, minlength=256)
    if count[list(GPU_KINDS)].any() and not count[list(cpu_side)].any():
        notes.append("GPU-only trace (no CPU events): kernels are not linked to operators, modules or steps.")
    props = decoded.deviceProperties
    return Trace(
        path=str(p),
        events=events,
        metadata=metadata,
        device_properties=[d for d in props if isinstance(d, dict)] if isinstance(props, list) else [],
        distributed_info=decoded.distributedInfo if isinstance(decoded.distributedInfo, dict) else {},
        source_format=form,
        dropped_events=dropped,
        notes=tuple(notes),
    )
