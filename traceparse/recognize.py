"""What a file that is not a Kineto trace is, and what to pass instead.

People keep other profilers' outputs beside their traces, and point traceparse at them: PyTorch's
execution trace (written by `ExecutionTraceObserver` next to the Kineto trace), the profiler's
memory-timeline export, Chakra graphs, rocprofv3's JSON, Nsight Systems reports, Perfetto
protobufs, TensorBoard event files. Each is recognised by its content (or, for binary formats,
its name and magic bytes), so the one-line refusal says what the file is and what to do.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

_KINETO = (
    "traceparse reads torch.profiler's Kineto trace (*.pt.trace.json[.gz], from export_chrome_trace or "
    "tensorboard_trace_handler)"
)


def binary_kind(path: Path, head: bytes) -> str | None:
    """A binary profiler output, by magic bytes or name; None when it may be JSON."""
    name = path.name.lower()
    if head.startswith(b"SQLite format 3\x00"):
        return f"an SQLite database (an Nsight Systems `nsys export` or similar), not a trace: {_KINETO}"
    if name.endswith((".nsys-rep", ".qdrep")):
        return f"an Nsight Systems report: {_KINETO}; nsys and torch.profiler can run together"
    if name.endswith((".perfetto-trace", ".pftrace", ".perfetto")):
        return f"a Perfetto protobuf trace: {_KINETO}"
    if "tfevents" in name:
        return (
            "a TensorBoard event file: torch-tb-profiler keeps the traces themselves beside it, under "
            "plugins/profile/, as *.pt.trace.json[.gz]: pass one of those"
        )
    return None


_TOP_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def json_object_kind(data: bytes | memoryview) -> str | None:
    """A JSON object without traceEvents: which tool wrote it, from its top-level keys."""
    try:
        keys = set(_TOP_KEYS.decode(data))
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if "nodes" in keys and ({"schema", "start_ts"} & keys):
        return (
            "a PyTorch execution trace (ExecutionTraceObserver), not a Kineto trace: pass the Kineto trace "
            "written beside it (*.pt.trace.json[.gz])"
        )
    if "workload_graph" in keys:
        return f"a Chakra workload graph (JSON), not a Kineto trace: {_KINETO}"
    if any(k.startswith("rocprofiler") for k in keys):
        return (
            "rocprofv3's JSON output, not a Kineto trace: profile with torch.profiler (it records HIP kernels "
            "on ROCm builds of torch) and pass its trace"
        )
    return None


def json_array_kind(data: bytes | memoryview) -> str | None:
    """A JSON array whose items are arrays: the profiler's memory-timeline export."""
    if bytes(data[:64]).lstrip()[:1] == b"[" and bytes(data[:64]).lstrip()[1:].lstrip()[:1] == b"[":
        return (
            "a torch.profiler memory-timeline export (export_memory_timeline), not a trace: pass the Kineto "
            "trace (export_chrome_trace) of the same run"
        )
    return None
