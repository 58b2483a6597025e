"""Stage 1, load: a trace file → typed columns (numpy) + metadata.

Decoding is typed and selective: msgspec decodes each event into a small Struct that names only
the fields the report needs, and keeps shape arguments as raw JSON (`msgspec.Raw`, a zero-copy
view) to be decoded later only for the ops whose FLOPs we count. That is what makes a
million-event file cheaper to analyze than to `json.loads`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from traceparse.errors import NotATraceError, UnreadableError, UsageError

# Event kinds, as small ints in the `kind` column.
OTHER, CPU_OP, USER_ANNOTATION, PYTHON_FUNCTION, RUNTIME, KERNEL, MEMCPY, MEMSET = range(8)
GPU_USER_ANNOTATION, FLOW_START, FLOW_END = 8, 9, 10
GPU_KINDS = (KERNEL, MEMCPY, MEMSET)

_CATEGORY_KIND = {
    "cpu_op": CPU_OP,
    "operator": CPU_OP,  # older torch
    "user_annotation": USER_ANNOTATION,
    "python_function": PYTHON_FUNCTION,
    "cuda_runtime": RUNTIME,
    "cuda_driver": RUNTIME,
    "runtime": RUNTIME,  # older torch / ROCm
    "kernel": KERNEL,
    "gpu_memcpy": MEMCPY,
    "gpu_memset": MEMSET,
    "gpu_user_annotation": GPU_USER_ANNOTATION,
}
_FLOW_CATEGORIES = {"ac2g", "fwdbwd"}
NO_ID = -1


_EMPTY = msgspec.Raw()


class _Args(msgspec.Struct, gc=False):
    external_id: int | str | None = msgspec.field(default=None, name="External id")
    correlation: int | str | None = None
    input_dims: msgspec.Raw = msgspec.field(default=_EMPTY, name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=_EMPTY, name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=_EMPTY, name="Concrete Inputs")
    seq: int | str | None = msgspec.field(default=None, name="Sequence number")
    fwd_tid: int | str | None = msgspec.field(default=None, name="Fwd thread id")
    stream: int | str | None = None
    device: int | str | None = None
    py_id: int | str | None = msgspec.field(default=None, name="Python id")
    py_parent: int | str | None = msgspec.field(default=None, name="Python parent id")
    nbytes: int | float | None = msgspec.field(default=None, name="bytes")
    name: str | None = None  # thread/process names of "M" events


class _Event(msgspec.Struct, gc=False):
    ph: str = ""
    cat: str | None = None
    name: str | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    ts: float | None = None
    dur: float | None = None
    id: int | str | None = None
    args: _Args | None = None


class _Trace(msgspec.Struct, gc=False):
    traceEvents: list[_Event]
    deviceProperties: list[dict[str, Any]] | None = None
    distributedInfo: dict[str, Any] | None = None
    traceparse: dict[str, Any] | None = None
    schemaVersion: int | None = None
    displayTimeUnit: str | None = None


_TRACE_DECODER = msgspec.json.Decoder(_Trace)
_ARRAY_DECODER = msgspec.json.Decoder(list[_Event])


@dataclass(frozen=True)
class Events:
    """All kept events as columns; row i of every array is one event.

    Ids that can be ints or strings in the wild (pid, tid, ids) are mapped to small ints;
    NO_ID (-1) marks a missing value.
    """

    kind: np.ndarray  # uint8, one of the kinds above
    name: np.ndarray  # int32 index into `names`
    names: tuple[str, ...]
    ts: np.ndarray  # float64 µs (no rounding)
    dur: np.ndarray  # float64 µs
    pid: np.ndarray  # int64 (interned when strings)
    tid: np.ndarray  # int64
    external_id: np.ndarray  # int64
    correlation: np.ndarray  # int64
    seq: np.ndarray  # int64 autograd sequence number
    fwd_tid: np.ndarray  # int64
    stream: np.ndarray  # int64
    device: np.ndarray  # int64
    py_id: np.ndarray  # int64
    py_parent: np.ndarray  # int64
    flow_id: np.ndarray  # int64 (flow events)
    flow_cat: np.ndarray  # int8: 0 none, 1 ac2g, 2 fwdbwd
    nbytes: np.ndarray  # float64 (memcpy/memset)
    # Raw JSON of shape args (zero-copy views), by row, only for cpu ops that have them.
    input_dims: dict[int, msgspec.Raw]
    input_types: dict[int, msgspec.Raw]
    concrete_inputs: dict[int, msgspec.Raw]

    def __len__(self) -> int:
        return int(self.kind.shape[0])


@dataclass(frozen=True)
class Trace:
    path: str
    events: Events
    metadata: dict[str, Any]  # the "traceparse" key written by `capture`, or {}
    device_properties: list[dict[str, Any]]
    distributed_info: dict[str, Any]
    source_format: str  # "object" or "array" (Chrome's JSON-array form)
    dropped_events: int  # events skipped for lacking ts/dur or a usable phase


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise UnreadableError(f"{path}: no such file")
    if path.is_dir():
        path = find_trace_in_dir(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise UnreadableError(f"{path}: empty file")
    # Decompress by magic bytes, not by name: renamed and double-gzipped files are common.
    for _ in range(3):
        if data[:2] != b"\x1f\x8b":
            break
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise UnreadableError(f"{path}: corrupt or truncated gzip ({exc})") from None
    if not data.strip():
        raise UnreadableError(f"{path}: empty trace")
    return data


TRACE_SUFFIXES = (".pt.trace.json.gz", ".pt.trace.json", ".json.gz", ".json")


def find_trace_in_dir(directory: Path) -> Path:
    """The single trace in a directory (what tensorboard_trace_handler writes into)."""
    candidates = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
    pt = [p for p in candidates if ".pt.trace." in p.name]
    pool = pt or candidates
    if not pool:
        raise UnreadableError(f"{directory}: directory holds no trace (*.pt.trace.json[.gz] or *.json[.gz])")
    if len(pool) > 1:
        names = ", ".join(p.name for p in pool[:3]) + (", …" if len(pool) > 3 else "")
        raise UsageError(f"{directory}: {len(pool)} traces ({names}); pass one file")
    return pool[0]


def _decode(data: bytes, path: Path) -> tuple[_Trace, str]:
    head = data.lstrip()[:1]
    try:
        if head == b"[":
            return _Trace(traceEvents=_ARRAY_DECODER.decode(data)), "array"
        if head != b"{":
            raise NotATraceError(f"{path}: not a JSON trace (starts with {data[:8]!r})")
        return _TRACE_DECODER.decode(data), "object"
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if "missing required field `traceEvents`" in msg:
            raise NotATraceError(f"{path}: JSON without 'traceEvents': not a torch.profiler/Chrome trace") from None
        raise NotATraceError(f"{path}: not a valid trace: {msg}") from None
    except msgspec.DecodeError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise UnreadableError(f"{path}: truncated JSON (was the export interrupted?)") from None
        if head not in (b"{", b"["):
            raise NotATraceError(f"{path}: not a JSON trace") from None
        raise UnreadableError(f"{path}: malformed JSON: {msg}") from None


class _Interner:
    """Map strings (or mixed ids) to dense ints, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if value is None:
            return NO_ID
        if isinstance(value, int):
            return value
        got = self.index.get(value)
        if got is None:
            # Strings get negative ids below NO_ID so they never collide with real ints.
            got = self.index[value] = -2 - len(self.index)
        return got


def _as_int(value: Any) -> int:
    if value is None:
        return NO_ID
    if isinstance(value, int):
        return value
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        return NO_ID


def _columns(raw: list[_Event]) -> tuple[Events, int]:
    names: dict[str, int] = {}
    kind = np.empty(len(raw), np.uint8)
    keep = np.ones(len(raw), bool)
    pid_of, tid_of = _Interner(), _Interner()
    n = len(raw)
    cols = {
        k: np.full(n, NO_ID, np.int64)
        for k in (
            "name",
            "pid",
            "tid",
            "external_id",
            "correlation",
            "seq",
            "fwd_tid",
            "stream",
            "device",
            "py_id",
            "py_parent",
            "flow_id",
        )
    }
    ts = np.zeros(n)
    dur = np.zeros(n)
    nbytes = np.zeros(n)
    flow_cat = np.zeros(n, np.int8)
    dims: dict[int, msgspec.Raw] = {}
    types: dict[int, msgspec.Raw] = {}
    concrete: dict[int, msgspec.Raw] = {}
    dropped = 0
    name_col, ext, corr = cols["name"], cols["external_id"], cols["correlation"]
    for i, e in enumerate(raw):
        ph = e.ph
        cat = e.cat
        if ph == "X":
            k = _CATEGORY_KIND.get(cat, OTHER) if cat is not None else OTHER
            if e.ts is None or e.dur is None:
                keep[i] = False
                dropped += 1
                continue
            dur[i] = e.dur
        elif ph in ("s", "f") and cat in _FLOW_CATEGORIES:
            k = FLOW_START if ph == "s" else FLOW_END
            flow_cat[i] = 1 if cat == "ac2g" else 2
            cols["flow_id"][i] = _as_int(e.id)
            if e.ts is None:
                keep[i] = False
                dropped += 1
                continue
        else:
            keep[i] = False  # metadata and instant events: nothing we report uses them
            continue
        kind[i] = k
        ts[i] = e.ts
        nm = e.name or ""
        idx = names.get(nm)
        if idx is None:
            idx = names[nm] = len(names)
        name_col[i] = idx
        cols["pid"][i] = pid_of(e.pid)
        cols["tid"][i] = tid_of(e.tid)
        a = e.args
        if a is None:
            continue
        ext[i] = _as_int(a.external_id)
        corr[i] = _as_int(a.correlation)
        if k == CPU_OP:
            cols["seq"][i] = _as_int(a.seq)
            cols["fwd_tid"][i] = _as_int(a.fwd_tid)
            if a.input_dims:
                dims[i] = a.input_dims
                if a.input_type:
                    types[i] = a.input_type
                if a.concrete:
                    concrete[i] = a.concrete
        elif k in GPU_KINDS:
            cols["stream"][i] = _as_int(a.stream)
            cols["device"][i] = _as_int(a.device)
            if a.nbytes is not None:
                nbytes[i] = float(a.nbytes)
        elif k == PYTHON_FUNCTION:
            cols["py_id"][i] = _as_int(a.py_id)
            cols["py_parent"][i] = _as_int(a.py_parent)
    rows = np.flatnonzero(keep)
    remap = {int(old): new for new, old in enumerate(rows)} if len(rows) != n else None

    def take(d: dict[int, msgspec.Raw]) -> dict[int, msgspec.Raw]:
        return d if remap is None else {remap[i]: v for i, v in d.items()}

    events = Events(
        kind=kind[rows],
        name=name_col[rows].astype(np.int32),
        names=tuple(names),
        ts=ts[rows],
        dur=dur[rows],
        pid=cols["pid"][rows],
        tid=cols["tid"][rows],
        external_id=ext[rows],
        correlation=corr[rows],
        seq=cols["seq"][rows],
        fwd_tid=cols["fwd_tid"][rows],
        stream=cols["stream"][rows],
        device=cols["device"][rows],
        py_id=cols["py_id"][rows],
        py_parent=cols["py_parent"][rows],
        flow_id=cols["flow_id"][rows],
        flow_cat=flow_cat[rows],
        nbytes=nbytes[rows],
        input_dims=take(dims),
        input_types=take(types),
        concrete_inputs=take(concrete),
    )
    return events, dropped


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a Kineto/Chrome trace (.json or .json.gz, object or array form) into columns."""
    p = Path(path)
    data = _read_bytes(p)
    decoded, form = _decode(data, p)
    del data
    if not decoded.traceEvents:
        raise NotATraceError(f"{p}: the trace has no events")
    events, dropped = _columns(decoded.traceEvents)
    if len(events) == 0:
        raise NotATraceError(f"{p}: no complete ('X') events with ts and dur: nothing to analyze")
    return Trace(
        path=str(p),
        events=events,
        metadata=decoded.traceparse if isinstance(decoded.traceparse, dict) else {},
        device_properties=[d for d in (decoded.deviceProperties or []) if isinstance(d, dict)],
        distributed_info=decoded.distributedInfo or {},
        source_format=form,
        dropped_events=dropped,
    )
