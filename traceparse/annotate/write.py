"""The output file: the original trace, byte for byte, with the new events appended.

The original events are kept byte for byte and in order (each is passed through as raw JSON),
and so are the other top-level keys. `traceEvents` is written as the *last* top-level key:
TensorBoard's profiler plugin adds its GPU-utilisation counters to a trace by cutting the file
at its last "]" and appending `, {counters…}]}` (torch_tb_profiler/run.py, append_gpu_metrics),
so anything after the events array that holds a "]" (a list in our own metadata block, a "]" in
Kineto's traceName) would receive the counters and break the JSON.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from traceparse import __version__
from traceparse.annotate.events import ARG_MEANINGS, COUNTERS, Summary, annotation_events
from traceparse.atomic import write_bytes_atomic
from traceparse.errors import UnreadableError, UsageError
from traceparse.load import find_trace_in_dir

if TYPE_CHECKING:
    from traceparse.api import Analysis

METADATA_KEY = "traceparseAnnotate"


class _Ids(msgspec.Struct, gc=False):
    ph: str | None = None
    pid: int | float | str | None = None
    tid: int | float | str | None = None
    ts: int | float | str | None = None


def _int_ids(events: list[_Ids]) -> set[int]:
    taken: set[int] = set()
    for e in events:
        for v in (e.pid, e.tid):
            if isinstance(v, str):
                v = int(v) if v.strip().lstrip("-").isdigit() else None
            if isinstance(v, int | float) and float(v).is_integer():
                taken.add(int(v))
    return taken


def _read_bytes(path: Path) -> bytes:
    """The trace's JSON text (a directory's single trace; gzip, even doubled, by magic bytes)."""
    if path.is_dir():
        path = find_trace_in_dir(path)
    try:
        data = path.read_bytes()
        for _ in range(3):
            if data[:2] != b"\x1f\x8b":
                break
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableError(f"{path}: cannot read ({exc})") from None
    return data


def _check_units(ids: list[_Ids], analysis: Analysis) -> None:
    """The new events are written in the analysis's clock (µs as in the file): refuse a trace whose
    timestamps the loader had to convert (nanosecond traces), rather than misplace every slice."""
    raw = np.array([e.ts for e in ids if e.ph == "X" and isinstance(e.ts, int | float)], dtype=np.float64)
    ev = analysis.trace.events
    mine = ev.ts
    if raw.size and mine.size:
        a, b = float(np.median(raw)), float(np.median(mine))
        if abs(a - b) > 1e3 + 1e-3 * abs(a):
            raise UsageError(
                "annotate needs timestamps in microseconds as written in the file (the Chrome trace format's "
                "unit); this trace's were converted on load (nanoseconds?): not supported"
            )


def _metadata(src: Path, summary: Summary) -> dict[str, Any]:
    return {
        "version": __version__,
        "source": src.name,
        "original_events": summary.original_events,
        "added_events": summary.added_events,
        "tracks": list(summary.tracks),
        "counters": list(summary.counters),
        "definitions": {**ARG_MEANINGS, **{c.label: c.meaning for c in COUNTERS}},
        "notes": list(summary.notes),
    }


def annotate_trace(
    path: str | os.PathLike[str], output: str | os.PathLike[str], analysis: Analysis | None = None
) -> Summary:
    """Write `output` (.json or .json.gz, atomically): the trace at `path` plus the traceparse tracks."""
    src, dst = Path(path), Path(output)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise UsageError(f"{dst}: the output would overwrite the input trace; choose another name")
    if analysis is None:
        from traceparse.api import run_pipeline

        analysis = run_pipeline(src)
    data = _read_bytes(src)
    array_form = data.lstrip()[:1] == b"["
    top: dict[str, msgspec.Raw] = {}
    if array_form:
        events_text: bytes | msgspec.Raw = data.rstrip()
        if not events_text.endswith(b"]"):  # the Chrome format allows an unclosed array
            events_text = events_text.rstrip(b", \t\r\n") + b"]"
    else:
        top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
        events_text = top["traceEvents"]
    raw_events = msgspec.json.decode(events_text, type=list[msgspec.Raw])
    ids = msgspec.json.decode(events_text, type=list[_Ids])
    _check_units(ids, analysis)
    new, summary = annotation_events(analysis, _int_ids(ids))
    summary = summary.with_original(len(raw_events))
    enc = msgspec.json.Encoder()
    events_json = b"[\n" + b",\n".join([*(bytes(r) for r in raw_events), *(enc.encode(e) for e in new)]) + b"\n]"
    if array_form:
        # No top level to carry metadata; TensorBoard's loader reads only object-form traces anyway.
        body = events_json
    else:
        out_top: dict[str, Any] = {k: v for k, v in top.items() if k != "traceEvents"}
        out_top[METADATA_KEY] = _metadata(src, summary)
        out_top["traceEvents"] = msgspec.Raw(events_json)  # last: see the module docstring
        body = enc.encode(out_top)
    if dst.name.endswith(".gz"):
        body = gzip.compress(body, compresslevel=6, mtime=0)
    write_bytes_atomic(dst, body)
    return summary
