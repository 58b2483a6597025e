"""The whole-file reader: any valid layout of a Chrome/Kineto trace, decoded at once.

The streamed reader (stream.py) handles Kineto's own layout faster; this one takes everything
else — the array form, other whitespace, nanosecond timestamps, string ids — and reports every
malformed file with its reason.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from traceparse.errors import NotATraceError, UnreadableError, UsageError
from traceparse.load.schema import (
    ARRAY_DECODER,
    CPU_OP,
    GPU_KINDS,
    NO_ID,
    NS_MAGNITUDE,
    OTHER,
    PYTHON_FUNCTION,
    RUNTIME,
    TRACE_DECODER,
    CommArgs,
    Events,
    Interner,
    RawEvent,
    RawTrace,
    ShapeArgs,
    ShapesFor,
    as_float,
    as_int,
    category_counts,
    kind_of_category,
    select_rows,
)
from traceparse.recognize import binary_kind, json_array_kind, json_object_kind


def read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise UnreadableError(f"{path}: no such file")
    try:
        if path.is_dir():
            path = find_trace_in_dir(path)
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read ({exc.strerror or exc})") from None
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
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors)
        data = data[3:]
    if data.lstrip()[:1] not in (b"{", b"[") and (kind := binary_kind(path, data[:16])):
        raise NotATraceError(f"{path}: {kind}")
    if not data.strip():
        raise UnreadableError(f"{path}: empty trace")
    return data


TRACE_SUFFIXES = (".pt.trace.json.gz", ".pt.trace.json", ".json.gz", ".json")


def find_trace_in_dir(directory: Path) -> Path:
    """The single trace in a directory (what tensorboard_trace_handler writes into)."""
    candidates = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
    pt = [p for p in candidates if ".pt.trace." in p.name]
    pool = pt or candidates
    if not pool:  # a TensorBoard log folder keeps its traces under plugins/profile/<run>/
        pool = sorted(p for p in directory.rglob("*.pt.trace.json*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
    if not pool:
        raise UnreadableError(f"{directory}: directory holds no trace (*.pt.trace.json[.gz] or *.json[.gz])")
    if len(pool) > 1:
        names = ", ".join(p.name for p in pool[:3]) + (", …" if len(pool) > 3 else "")
        raise UsageError(f"{directory}: {len(pool)} traces ({names}); pass one file")
    return pool[0]


def decode(data: bytes, path: Path) -> tuple[RawTrace, str]:
    """The trace and its form: "object", "array" or "array-unclosed"."""
    head = data.lstrip()[:1]
    try:
        if head == b"[":
            events, closed = _decode_array(data)
            return RawTrace(traceEvents=events), "array" if closed else "array-unclosed"
        if head != b"{":
            raise NotATraceError(f"{path}: not a JSON trace (starts with {data[:8]!r})")
        return TRACE_DECODER.decode(data), "object"
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if "missing required field `traceEvents`" in msg:
            kind = json_object_kind(data)
            if kind:
                raise NotATraceError(f"{path}: {kind}") from None
            raise NotATraceError(f"{path}: JSON without 'traceEvents': not a torch.profiler/Chrome trace") from None
        if head == b"[" and (kind := json_array_kind(data)):
            raise NotATraceError(f"{path}: {kind}") from None
        raise NotATraceError(f"{path}: not a valid trace: {msg}") from None
    except msgspec.DecodeError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise UnreadableError(f"{path}: truncated JSON (was the export interrupted?)") from None
        if head not in (b"{", b"["):
            raise NotATraceError(f"{path}: not a JSON trace") from None
        if "utf-8" in msg.lower():  # msgspec reports bad bytes in a string as a decode error too
            raise UnreadableError(f"{path}: text that is not valid UTF-8: corrupt file?") from None
        raise UnreadableError(f"{path}: malformed JSON: {msg}") from None
    except UnicodeDecodeError:
        raise UnreadableError(f"{path}: text that is not valid UTF-8: corrupt file?") from None


def _decode_array(data: bytes) -> tuple[list[RawEvent], bool]:
    """Chrome's JSON-array form, and whether it was closed: the format makes the closing
    bracket optional (a tracer may be killed mid-run)."""
    try:
        return ARRAY_DECODER.decode(data), True
    except msgspec.DecodeError as exc:
        body = data.rstrip()
        if "truncated" not in str(exc).lower() or not body.endswith((b"}", b"},")):
            raise
        # Only the bracket may be missing: close it; an event cut in half stays "truncated".
        try:
            return ARRAY_DECODER.decode(body.rstrip(b",") + b"]"), False
        except msgspec.DecodeError:
            raise exc from None


def columns(raw: list[RawEvent], shapes_for: ShapesFor = None) -> tuple[Events, int]:
    names: dict[str, int] = {}
    wants: dict[str, bool] = {}  # shapes_for per name, asked once
    kind = np.empty(len(raw), np.uint8)
    keep = np.ones(len(raw), bool)
    pid_of, tid_of = Interner(), Interner()
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
        )
    }
    ts = np.zeros(n)
    dur = np.zeros(n)
    nbytes = np.zeros(n)
    shape = np.full(n, NO_ID, np.int32)
    comm = np.full(n, NO_ID, np.int32)
    comm_codes: dict[tuple[Any, ...], int] = {}  # collective arguments → code, in order of first appearance
    shapes: dict[bytes, int] = {}  # the three raw texts joined by NUL (never in JSON text) → code
    shape_args: list[ShapeArgs] = []
    recorded = False
    dropped = 0
    name_col, ext, corr = cols["name"], cols["external_id"], cols["correlation"]
    kinds_seen: dict[str | None, int] = {}

    def kind_of(cat: str | None) -> int:
        got = kinds_seen.get(cat)
        if got is None:
            got = kinds_seen[cat] = kind_of_category(cat)
        return got

    for i, e in enumerate(raw):
        ph = e.ph
        cat = e.cat
        if ph == "X":
            k = kind_of(cat)
            if e.ts is None or e.dur is None:
                keep[i] = False
                dropped += 1
                continue
            dur[i] = e.dur
        else:
            keep[i] = False  # metadata, instant and flow events: nothing we report uses them
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
        # Each id is kept only for the kinds it links (as in the streaming loader).
        if k == CPU_OP:
            ext[i] = as_int(a.external_id if a.external_id is not None else a.external_id_old)
            cols["seq"][i] = as_int(a.seq)
            cols["fwd_tid"][i] = as_int(a.fwd_tid)
            recorded = recorded or bool(a.input_dims)
            if a.input_dims and (shapes_for is None or wants.setdefault(nm, shapes_for(nm))):
                key = b"\x00".join((a.input_dims, a.input_type, a.concrete))
                code = shapes.get(key)
                if code is None:
                    code = shapes[key] = len(shape_args)
                    shape_args.append(ShapeArgs(a.input_dims, a.input_type or None, a.concrete or None))
                shape[i] = code
        elif k in GPU_KINDS:
            ext[i] = as_int(a.external_id if a.external_id is not None else a.external_id_old)
            corr[i] = as_int(a.correlation)
            cols["stream"][i] = as_int(a.stream)
            cols["device"][i] = as_int(a.device)
            if a.nbytes is not None:
                nbytes[i] = as_float(a.nbytes)
            if a.coll_name is not None:
                comm_key = CommArgs.key(a.coll_name, a.in_nelems, a.out_nelems, a.group_size, a.comm_dtype)
                if comm_key is not None:
                    comm[i] = comm_codes.setdefault(comm_key, len(comm_codes))
        elif k == RUNTIME:
            corr[i] = as_int(a.correlation)
        elif k == PYTHON_FUNCTION:
            cols["py_id"][i] = as_int(a.py_id)
            cols["py_parent"][i] = as_int(a.py_parent)
    rows = np.flatnonzero(keep)
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
        nbytes=nbytes[rows],
        shape=shape[rows],
        shapes=tuple(shape_args),
        shapes_recorded=recorded,
        other_categories=category_counts(dict(Counter(raw[i].cat for i in rows[kind[rows] == OTHER].tolist()))),
        comm=comm[rows] if comm_codes else None,
        comms=tuple(CommArgs.of_key(k) for k in comm_codes),
    )
    return events, dropped


# ---- units, ranges and metadata: what a well-formed but unusual trace needs ----------------------

MAX_ABS_TS_US = 1e17  # beyond: garbage, not a clock (dropped, counted)
MAX_DUR_US = 1e14  # ~3 years


def ns_offset(raw: list[RawEvent], display_unit: Any, base_ns: Any) -> int | None:
    """None when ts/dur are µs (the Chrome format's unit); else the integer offset (ns) to subtract
    before dividing by 1000. Nanoseconds are recognised on a sample of complete events, by
    magnitude (the median timestamp is an epoch in ns, like baseTimeNanoseconds) or by
    displayTimeUnit "ns" together with ns-sized durations (median ≥ 1000, i.e. ≥ 1 µs in ns)."""
    stride = max(1, len(raw) // 4096)
    ts: list[int | float] = []
    durs: list[int | float] = []
    for e in raw[::stride]:
        if e.ph == "X" and e.ts is not None and e.dur is not None:
            ts.append(e.ts)
            if e.dur > 0:
                durs.append(e.dur)
    if not ts:
        return None
    ts.sort()
    median_ts = ts[len(ts) // 2]
    if abs(median_ts) > NS_MAGNITUDE:
        base_ok = isinstance(base_ns, int) and not isinstance(base_ns, bool)
        if base_ok and abs(median_ts - base_ns) < NS_MAGNITUDE:
            return int(base_ns)
        return int(ts[0])
    if display_unit == "ns" and durs:
        durs.sort()
        if durs[len(durs) // 2] >= 1000:
            return 0
    return None


def ns_to_us(raw: list[RawEvent], offset: int) -> None:
    for e in raw:
        if e.ts is not None:
            e.ts = (e.ts - offset) / 1000
        if e.dur is not None:
            e.dur = e.dur / 1000


def sane_times(ev: Events) -> tuple[Events, int]:
    """Negative durations become 0 (as Kineto does); events whose ts/dur cannot be a clock
    reading (beyond ±1e17 µs, or lasting years) are dropped and counted."""
    np.maximum(ev.dur, 0.0, out=ev.dur)
    ok = (np.abs(ev.ts) <= MAX_ABS_TS_US) & (ev.dur <= MAX_DUR_US)
    if ok.all():
        return ev, 0
    return select_rows(ev, np.flatnonzero(ok)), int((~ok).sum())
