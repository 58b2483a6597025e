"""The fast path of stage 1: a Kineto trace streamed from disk into columns, block by block.

`load_trace` tries this first. The file is cut into blocks of ~16 MiB of whole events; each is
wrapped in brackets and decoded by msgspec into small structs with strict field types, which
become numpy columns through C-level `map(attrgetter)` passes and value→code tables (no
per-event Python statements); events of other phases (flows are a quarter of a Kineto trace)
decode into field-less structs, so msgspec only skips over them. Only one block's structs exist
at a time per process, and the
shape arguments are kept once per distinct value, so peak memory is the columns, not the JSON
text nor a Python object per event. On Linux an uncompressed file's blocks are decoded by
forked worker processes (one per core, up to 4; TRACEPARSE_WORKERS=1 decodes in this process)
while this one only merges their columns: merging is cheap, so keeping it off the workers' path
beats decoding here too. A gzip is decompressed and cut by this process, and each block's text
goes to a worker. Blocks are merged in file order, so ids come out as a sequential read numbers
them.

Cutting needs no JSON scanner: a JSON string cannot hold a raw newline, so Kineto's event
separator `},\n  {` (the whitespace seen between `[` and the first event) occurs only between
events; a cut anywhere else would leave a bracket open, which the decode of that block rejects
(the first block starts at the first event, so by induction every accepted cut is real).

Anything this path does not handle exactly like the full decoder (`load._decode` + `_columns`)
makes it return None and `load_trace` starts over on the full path: the array form, a value
of an unexpected type (string ids, huge ints, a missing or unknown phase), nanosecond timestamps, a
format without such separators, and every malformed file (so error messages stay those of
the full path). Tests check that both paths give identical columns on every fixture.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Union, cast

import msgspec
import numpy as np

from traceparse import load as L
from traceparse.errors import TraceparseError

# A gzip's inflate runs in this process, ahead of the workers: ISA-L's is ~3x zlib's (0.3 s vs
# 1.0 s for a 370 MB trace). Without isal (a box without the registry), the stdlib's.
_GzipFile: Any
try:
    from isal.igzip import IGzipFile as _GzipFile
    from isal.isal_zlib import error as _IsalError

    GZIP_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], _IsalError))
except ImportError:  # pragma: no cover - isal is a dependency; this is for bare environments
    from gzip import GzipFile as _GzipFile

    GZIP_ERRORS = (zlib.error,)

# A damaged file (I/O, truncated or corrupt gzip): the full path reports it.
DAMAGED: tuple[type[Exception], ...] = (OSError, EOFError, *GZIP_ERRORS)

BLOCK = 16 << 20  # bytes of JSON decoded at a time (small enough to balance two workers' last blocks)
MAX_WORKERS = 4
_HEAD_LIMIT = 64 << 20  # a header (metadata before the events) larger than this: full path
_KEY = re.compile(rb'"traceEvents"\s*:\s*\[([ \t\r\n]*)')
_LAST = re.compile(rb"\}[ \t\r\n]*\]")
_NAN = math.nan

Progress = Callable[[int, int], None]  # (bytes read, total bytes) of the file on disk


class _Bail(Exception):
    """The full path must decide (an unusual but possibly valid trace, or a malformed one)."""


class _NoWorkers(Exception):
    """Worker processes could not be started or one died: decode in this process instead."""


def _can_fork() -> bool:
    """Workers are forked, on Linux only, from a process with no other Python thread (fork would
    copy a lock another thread holds) that may have children (not a daemonic worker itself).
    spawn is not used: it re-imports the caller's __main__, which a script may not guard."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and not multiprocessing.current_process().daemon
    )


class _Args(msgspec.Struct, gc=False, frozen=True):
    external_id: int | None = msgspec.field(default=L.NO_ID, name="External id")
    external_id_old: int | None = msgspec.field(default=L.NO_ID, name="external id")  # torch 1.8-1.10
    correlation: int | None = L.NO_ID
    input_dims: msgspec.Raw = msgspec.field(default=L._EMPTY, name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=L._EMPTY, name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=L._EMPTY, name="Concrete Inputs")
    seq: int | None = msgspec.field(default=L.NO_ID, name="Sequence number")
    fwd_tid: int | None = msgspec.field(default=L.NO_ID, name="Fwd thread id")
    stream: int | None = L.NO_ID
    device: int | None = L.NO_ID
    py_id: int | None = msgspec.field(default=L.NO_ID, name="Python id")
    py_parent: int | None = msgspec.field(default=L.NO_ID, name="Python parent id")  # null at a root frame
    nbytes: float | None = msgspec.field(default=0.0, name="bytes")


_NO_ARGS = _Args()


class _Event(msgspec.Struct, gc=False, tag_field="ph", tag="X"):
    """A complete ("X") event: the only kind kept."""

    cat: str | None = None
    name: str | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    ts: float | None = None  # missing: NaN in the column
    dur: float | None = None
    args: _Args = _NO_ARGS


# Every other phase of the Chrome trace format (a quarter of a Kineto trace's events are "s"/"f"
# flows) decodes into a struct with no fields: msgspec only skips over its values. Its ts/dur
# are class attributes, NaN, so the column passes read every row alike and drop these rows with
# the events that lack a time. A missing or unknown phase fails the decode: the full path decides.
_OTHER_PHASES = tuple("BEiICbnestfPONDMR()vV")
_SKIPPED = tuple(
    msgspec.defstruct(f"_Skipped_{i}", [], tag_field="ph", tag=ph, gc=False, namespace={"ts": _NAN, "dur": _NAN})
    for i, ph in enumerate(_OTHER_PHASES)
)
_DECODER = msgspec.json.Decoder(list[Union[(_Event, *_SKIPPED)]])  # type: ignore[valid-type]
_FIELDS = ("cat", "name", "pid", "tid", "ts", "dur", "args")
_G = {k: attrgetter(k) for k in (*_FIELDS, *(f"args.{f}" for f in _Args.__struct_fields__))}
_A = {f: attrgetter(f) for f in _Args.__struct_fields__}
_DIMS, _TYPES, _CONCRETE = _A["input_dims"], _A["input_type"], _A["concrete"]
_NUL = b"\x00"
_INT_COLS = ("external_id", "correlation", "seq", "fwd_tid", "stream", "device", "py_id", "py_parent")


def _ints(get: Callable[[Any], Any], items: list[Any]) -> np.ndarray:
    """int64 column of get(item) (ints or None: NO_ID); bails on an int outside int64, which the
    full path treats as missing. fromiter over a map: no intermediate list."""
    n = len(items)
    try:
        arr = np.fromiter(map(get, items), np.int64, n)
    except TypeError:  # None among them
        arr = np.fromiter((L.NO_ID if v is None else v for v in map(get, items)), np.int64, n)
    except OverflowError:
        raise _Bail from None
    if n and arr.min() == np.iinfo(np.int64).min:
        raise _Bail
    return arr


def _floats(get: Callable[[Any], Any], items: list[Any]) -> np.ndarray:
    """float64 column of get(item) (floats or None: NaN)."""
    try:
        return np.fromiter(map(get, items), np.float64, len(items))
    except TypeError:
        return np.array(list(map(get, items)), np.float64)  # None becomes NaN


def _take(items: list[Any], at: np.ndarray) -> list[Any]:
    """[items[i] for i in at], by one C-level itemgetter call."""
    if at.size > 1:
        return list(itemgetter(*at.tolist())(items))
    return [items[int(i)] for i in at]


_cat_code = L.kind_of_category
_CAT_CODES: dict[Any, int] = {c: _cat_code(c) for c in (None, *L._CATEGORY_KIND)}


_TABLES = ("name", "pid", "tid", "shape")


@dataclass
class _Tables:
    """Value → code tables of one process, kept across the blocks it decodes: a name, pid or
    shape seen in an earlier block is then one dict lookup inside a C-level pass."""

    token: tuple[int, int] = (0, 0)
    shapes_for: L.ShapesFor = None
    lut: dict[str, dict[Any, int]] = field(default_factory=lambda: {k: {} for k in _TABLES})
    wants_shapes: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # per name code

    def names_wanting_shapes(self, codes: np.ndarray) -> np.ndarray:
        """Per name code: does the caller want this op's shape arguments (extended for new names)."""
        names = self.lut["name"]
        if self.wants_shapes.size < len(names):
            new = list(names)[self.wants_shapes.size :]
            keep = self.shapes_for
            more = [keep is None or keep(n or "") for n in new]  # a missing name is "" (as merged)
            self.wants_shapes = np.concatenate([self.wants_shapes, np.array(more, bool)])
        return self.wants_shapes[codes]


_WORKER_TABLES = _Tables()


@dataclass
class _Block:
    """One block's kept events as columns, its codes local to the decoding process's tables."""

    token: tuple[int, int]
    m: int = 0
    dropped: int = 0
    max_abs_ts: float = 0.0
    shapes_recorded: bool = False
    cols: dict[str, np.ndarray] = field(default_factory=dict)  # final values
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # name, pid, tid, shape: local codes
    new: dict[str, list[Any]] = field(default_factory=dict)  # values first seen here, in order
    other_cats: dict[Any, int] = field(default_factory=dict)  # categories of OTHER-kind events: count


def _lookup(
    lut: dict[Any, int], new: list[Any], get: Callable[[Any], Any] | None, items: list[Any], dtype: Any
) -> np.ndarray:
    """lut[get(item)] (get None: lut[item]) per item in one C-level pass; values not in the table
    are added first, numbered in order of first appearance, and listed in `new`."""
    try:
        return np.fromiter(map(lut.__getitem__, items if get is None else map(get, items)), dtype, len(items))
    except KeyError:
        values = items if get is None else list(map(get, items))
        for v in dict.fromkeys(values):
            if v not in lut:
                lut[v] = len(lut)
                new.append(v)
        return np.fromiter(map(lut.__getitem__, values), dtype, len(values))


def _columnize(evs: list[_Event], tables: _Tables) -> _Block:
    """The kept events of one decoded block as columns (the rules of `load._columns`)."""
    out = _Block(tables.token, new={k: [] for k in _TABLES})
    n = len(evs)
    if not n:
        return out
    g = _G
    # Only complete ("X") events are kept; other phases read as NaN times, so one mask drops
    # them and the complete events without a usable time (those are counted as dropped).
    ts, dur = _floats(g["ts"], evs), _floats(g["dur"], evs)
    bad = np.isnan(ts) | np.isnan(dur)
    x = evs
    if bad.any():
        out.dropped = list(map(type, _take(evs, np.flatnonzero(bad)))).count(_Event)
        good = np.flatnonzero(~bad)
        x, ts, dur = _take(evs, good), ts[good], dur[good]
    m = out.m = len(x)
    if not m:
        return out
    out.max_abs_ts = float(np.abs(ts).max())
    try:
        kind = np.fromiter(map(_CAT_CODES.__getitem__, map(g["cat"], x)), np.uint8, m)
    except KeyError:
        cats = list(map(g["cat"], x))
        for c in dict.fromkeys(cats):
            _CAT_CODES.setdefault(c, _cat_code(c))
        kind = np.fromiter(map(_CAT_CODES.__getitem__, cats), np.uint8, m)
    other = np.flatnonzero(kind == L.OTHER)
    if other.size:
        out.other_cats = dict(Counter(map(g["cat"], _take(x, other))))

    lut, new = tables.lut, out.new
    out.codes = {k: _lookup(lut[k], new[k], g[k], x, np.int64) for k in ("name", "pid", "tid")}
    c = out.cols
    c["kind"], c["ts"], c["dur"] = kind, ts, dur
    args = list(map(g["args"], x))
    is_cpu = kind == L.CPU_OP
    # Each arg is gathered only from the rows of the kinds that carry it (as in the full path).
    for name in _INT_COLS:
        c[name] = np.full(m, L.NO_ID, np.int64)
    c["nbytes"] = np.zeros(m)
    for mask, fields in (
        (is_cpu, ("external_id", "external_id_old", "seq", "fwd_tid")),
        (
            L.of_kinds(kind, L.GPU_KINDS),
            ("external_id", "external_id_old", "correlation", "stream", "device", "nbytes"),
        ),
        (kind == L.RUNTIME, ("correlation",)),
        (kind == L.PYTHON_FUNCTION, ("py_id", "py_parent")),
    ):
        at = np.flatnonzero(mask)
        if not at.size:
            continue
        some = _take(args, at)
        for name in fields:
            if name == "nbytes":
                vals = _floats(_A[name], some)
                c[name][at] = np.where(np.isfinite(vals), vals, 0.0)
            elif name == "external_id_old":  # read only where the current spelling is absent
                ext = c["external_id"][at]
                c["external_id"][at] = np.where(ext != L.NO_ID, ext, _ints(_A[name], some))
            else:
                c[name][at] = _ints(_A[name], some)

    # Shape arguments of the CPU ops that have Input Dims (and whose name the caller wants them
    # for): one code per distinct (dims, types, concrete) triple, keyed by the three raw JSON
    # texts joined by NUL (never in raw JSON text).
    cpu = np.flatnonzero(is_cpu & tables.names_wanting_shapes(out.codes["name"]))
    cpu_args = _take(args, cpu)
    has = np.flatnonzero(np.fromiter(map(len, map(_DIMS, cpu_args)), np.int64, cpu.size))
    # record_shapes gives (nearly) every op Input Dims: a sample of all CPU ops tells if it was on.
    out.shapes_recorded = bool(has.size) or any(map(len, map(_DIMS, _take(args, np.flatnonzero(is_cpu)[:256]))))
    shape = out.codes["shape"] = np.full(m, L.NO_ID, np.int64)
    if has.size:
        with_dims = _take(cpu_args, has)
        keys = list(
            map(_NUL.join, zip(map(_DIMS, with_dims), map(_TYPES, with_dims), map(_CONCRETE, with_dims), strict=True))
        )
        shape[cpu[has]] = _lookup(lut["shape"], new["shape"], None, keys, np.int64)
    return out


_BUFFER = bytearray()  # reused from block to block: fresh 16 MiB buffers cost page faults


def _decode_range(path: str, start: int, end: int, tables: _Tables | None = None) -> _Block:
    """Decode the events in bytes [start, end) of the file (whole events, comma separated)."""
    global _BUFFER
    n = end - start + 2
    if len(_BUFFER) < n:
        _BUFFER = bytearray(n)
    view = memoryview(_BUFFER)[:n]  # never resized in place: a new one is bound when too small
    view[0], view[n - 1] = 0x5B, 0x5D  # "[", "]"
    with open(path, "rb") as f:
        f.seek(start)
        if _fill(f, view[1 : n - 1]) != n - 2:
            raise _Bail
    return _decode_text(view, tables)


def _decode_text(text: bytearray | memoryview, tables: _Tables | None = None) -> _Block:
    """Decode one block's text (a JSON array of whole events)."""
    return _columnize(_DECODER.decode(text), tables or _WORKER_TABLES)


class _InOrder:
    """Decodes blocks in this process, or in forked worker processes when asked and possible,
    and merges their columns in submission order (so codes come out as a sequential read numbers
    them). With workers, at most two blocks per worker are in flight: the reader stays ahead
    without holding the whole file; this process merges, and does `cols.meanwhile` once every
    worker has work queued."""

    def __init__(self, cols: _Columns, n_workers: int, merged: Callable[[int], Any]) -> None:
        self.cols, self.merged = cols, merged
        self.tables = _Tables((os.getpid(), id(cols)), cols.shapes_for)
        self.pool: ProcessPoolExecutor | None = None
        self.limit = 2 * n_workers
        self.pending: deque[tuple[Future[_Block], int]] = deque()
        if n_workers > 1 and _can_fork():
            try:
                self.pool = ProcessPoolExecutor(
                    n_workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_init_worker,
                    initargs=(cols.shapes_for,),
                )
            except (OSError, RuntimeError, ValueError) as exc:  # no semaphores or processes here
                raise _NoWorkers from exc

    def __enter__(self) -> _InOrder:
        return self

    def submit(self, fn: Callable[..., _Block], args: tuple[Any, ...], nbytes: int) -> None:
        if self.pool is None:
            self._merge(fn(*args, self.tables), nbytes)
            return
        try:
            with _sigint_blocked():  # a worker forked here inherits the block: Ctrl-C is the parent's alone
                self.pending.append((self.pool.submit(fn, *args), nbytes))
        except (OSError, RuntimeError, AssertionError) as exc:  # no processes to be had
            raise _NoWorkers from exc
        if len(self.pending) == self.limit:
            self.cols.meanwhile()  # every worker has work queued: this process is free until they finish
        while len(self.pending) > self.limit:
            self._take_one()

    def _take_one(self) -> None:
        fut, nbytes = self.pending.popleft()
        try:
            block = fut.result()
        except BrokenProcessPool as exc:  # a worker died (killed for memory?): one process then
            raise _NoWorkers from exc
        self._merge(block, nbytes)

    def _merge(self, block: _Block, nbytes: int) -> None:
        self.cols.merge(block)
        self.merged(nbytes)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            while exc_type is None and self.pending:
                self._take_one()
        finally:
            if self.pool is not None:
                for fut, _ in self.pending:
                    fut.cancel()
                self.pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked (not ignored: one that arrives meanwhile is delivered on leaving) while
    worker processes may be forked. A terminal's Ctrl-C goes to the whole process group; a worker
    interrupted mid-fork or mid-decode prints its own traceback, so workers never take it: the
    parent stops, cancels them and says "interrupted"."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _init_worker(shapes_for: L.ShapesFor) -> None:
    global _WORKER_TABLES
    _WORKER_TABLES = _Tables((os.getpid(), 0), shapes_for)


class _Columns:
    """Columns of the kept events, merged block by block in file order (same rows and ids as
    `load._columns`: names, pids and tids are numbered in order of first appearance)."""

    def __init__(self, shapes_for: L.ShapesFor = None, meanwhile: Callable[[], None] = lambda: None) -> None:
        self.shapes_for = shapes_for
        self.meanwhile = meanwhile  # work for this process while workers decode
        self.names: dict[str, int] = {}
        self.pid_of, self.tid_of = L._Interner(), L._Interner()
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in _COLS}
        self.shapes: list[L.ShapeArgs] = []
        self.ids: dict[str, dict[Any, int]] = {k: {} for k in _TABLES}  # value → global id
        self.maps: dict[tuple[int, int], dict[str, list[int]]] = {}  # per process: local code → global id
        self.shapes_recorded = False
        self.dropped = 0
        self.other_cats: dict[Any, int] = {}
        self.max_abs_ts = 0.0

    def _global(self, table: str, value: Any) -> int:
        if table == "name":
            return self.names.setdefault(value or "", len(self.names))
        if table == "pid":
            return self.pid_of(value)
        if table == "tid":
            return self.tid_of(value)
        dims, types, concrete = value.split(_NUL)
        self.shapes.append(L.ShapeArgs(msgspec.Raw(dims), msgspec.Raw(types) or None, msgspec.Raw(concrete) or None))
        return len(self.shapes) - 1

    def merge(self, b: _Block) -> None:
        self.dropped += b.dropped
        for cat, count in b.other_cats.items():
            self.other_cats[cat] = self.other_cats.get(cat, 0) + count
        self.max_abs_ts = max(self.max_abs_ts, b.max_abs_ts)
        self.shapes_recorded = self.shapes_recorded or b.shapes_recorded
        if not b.m:
            return
        maps = self.maps.setdefault(b.token, {k: [] for k in _TABLES})
        for table in _TABLES:
            ids, local = self.ids[table], maps[table]
            for v in b.new[table]:
                got = ids.get(v)
                if got is None:
                    got = ids[v] = self._global(table, v)
                local.append(got)
        p = self.parts
        for k, col in b.cols.items():
            p[k].append(col)
        for k in _TABLES:  # local code → global id; NO_ID (-1, no shape) picks the appended NO_ID
            p[k].append(np.array([*maps[k], L.NO_ID], np.int64)[b.codes[k]])

    def events(self) -> L.Events:
        p = self.parts

        def cat(k: str, dtype: Any) -> np.ndarray:
            return np.concatenate(p[k]).astype(dtype, copy=False) if p[k] else np.empty(0, dtype)

        return L.Events(
            kind=cat("kind", np.uint8),
            name=cat("name", np.int32),
            names=tuple(self.names),
            ts=cat("ts", np.float64),
            dur=cat("dur", np.float64),
            pid=cat("pid", np.int64),
            tid=cat("tid", np.int64),
            external_id=cat("external_id", np.int64),
            correlation=cat("correlation", np.int64),
            seq=cat("seq", np.int64),
            fwd_tid=cat("fwd_tid", np.int64),
            stream=cat("stream", np.int64),
            device=cat("device", np.int64),
            py_id=cat("py_id", np.int64),
            py_parent=cat("py_parent", np.int64),
            nbytes=cat("nbytes", np.float64),
            shape=cat("shape", np.int32),
            shapes=tuple(self.shapes),
            shapes_recorded=self.shapes_recorded,
            other_categories=L.category_counts(self.other_cats),
        )


_COLS = ("kind", "name", "ts", "dur", "pid", "tid", "nbytes", "shape", *_INT_COLS)


def _open(path: Path) -> tuple[Any, Any, int, bool] | None:
    """(text stream, file on disk, its size, gzip?), or None for what the full path must report."""
    try:
        if path.is_dir():
            path = L.find_trace_in_dir(path)
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except (OSError, TraceparseError):
        return None
    size = os.fstat(raw.fileno()).st_size
    if raw.read(2) != b"\x1f\x8b":
        raw.seek(0)
        return raw, raw, size, False
    raw.seek(0)
    text = _GzipFile(fileobj=raw, mode="rb")
    if text.peek(2)[:2] == b"\x1f\x8b":  # gzip inside gzip: the full path unwraps it
        raw.close()
        return None
    return text, raw, size, True


def _fill(stream: Any, view: memoryview) -> int:
    """readinto until the view is full or the stream ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def workers() -> int:
    """Worker processes decoding an uncompressed file (1: decode in this process instead):
    TRACEPARSE_WORKERS, else one per core (at most 4)."""
    env = os.environ.get("TRACEPARSE_WORKERS", "")
    if env.strip().isdigit():
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cores))


def load_columns(
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    block: int = BLOCK,
    n_workers: int | None = None,
    shapes_for: L.ShapesFor = None,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[L._Trace, L.Events, int] | None:
    """(top-level fields with no events, the kept events as columns, events dropped), or None
    when the full path must load this file (see the module docstring). `shapes_for` and
    `meanwhile` as in `load_trace` (called here once, by the end at the latest)."""
    once = _Once(meanwhile)
    try:
        try:
            return _load_columns(path, progress, block, n_workers or workers(), shapes_for, once)
        except _NoWorkers:  # no processes to be had, or one died: start over in this process
            return _load_columns(path, progress, block, 1, shapes_for, once)
    finally:
        once()


class _Once:
    def __init__(self, fn: Callable[[], None] | None) -> None:
        self.fn = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


def _load_columns(
    path: str | os.PathLike[str],
    progress: Progress | None,
    block: int,
    n_workers: int,
    shapes_for: L.ShapesFor,
    meanwhile: _Once,
) -> tuple[L._Trace, L.Events, int] | None:
    opened = _open(Path(path))
    if opened is None:
        return None
    stream, raw, size, gz = opened
    try:
        header, sep, first = _header(stream)
        cols = _Columns(shapes_for, meanwhile)
        if gz:
            top = _stream(stream, raw, size, header, sep, first, cols, progress, block, n_workers)
        else:
            start = raw.tell() - len(first)  # file offset of the first event's "{"
            top = _ranges(raw, size, header, sep, start, cols, progress, block, n_workers)
        if top.displayTimeUnit == "ns" or cols.max_abs_ts > L._NS_MAGNITUDE:
            raise _Bail  # nanoseconds: the full path converts them
        return top, cols.events(), cols.dropped
    except (_Bail, msgspec.DecodeError, ValueError, OverflowError, TypeError):
        return None
    except DAMAGED:
        return None
    finally:
        raw.close()


def _header(stream: Any) -> tuple[bytes, bytes, bytes]:
    """(the text through `"traceEvents": [`, the event separator, what was read after it)."""
    head = bytearray()
    m = None
    while m is None or m.end() == len(head):  # to the first byte after `"traceEvents": [` and blanks
        more = stream.read(1 << 20)
        if not more or len(head) > _HEAD_LIMIT:
            raise _Bail
        seen = max(0, len(head) - 256)
        head += more
        if head.lstrip()[:1] not in (b"", b"{"):
            raise _Bail  # the array form, a BOM, not JSON: the full path decides
        m = _KEY.search(head, seen if m is None else m.start())
    if head[m.end() : m.end() + 1] != b"{":
        raise _Bail  # an empty or odd event list
    return bytes(head[: m.start(1)]), b"}," + m.group(1) + b"{", bytes(head[m.end() :])


def _stream(
    stream: Any,
    raw: Any,
    size: int,
    header: bytes,
    sep: bytes,
    carry: bytes,
    cols: _Columns,
    progress: Progress | None,
    block: int,
    n_workers: int,
) -> L._Trace:
    """A gzip (no random access): this process decompresses and cuts block after block, and the
    decoding goes to the workers, if any (each block's text is sent to one)."""
    with _InOrder(cols, n_workers, lambda _nbytes: progress and progress(raw.tell(), size)) as decoder:
        while True:
            buf = bytearray(len(carry) + block + 2)
            buf[0] = 0x5B  # "["
            buf[1 : 1 + len(carry)] = carry
            got = _fill(stream, memoryview(buf)[1 + len(carry) : 1 + len(carry) + block])
            end = 1 + len(carry) + got
            cut = buf.rfind(sep, 1, end)
            if cut >= 0:
                buf[cut + 1] = 0x5D  # the "," after the last complete event becomes "]"
                carry = bytes(buf[cut + len(sep) - 1 : end])
                del buf[cut + 2 :]
                decoder.submit(_decode_text, (buf,), cut + 2)
            elif got == block and end > 4 * block:
                raise _Bail  # no separator in 4 blocks: another format (minified): the full path
            else:
                carry = bytes(buf[1:end])
            if got < block:  # the end: the last event, then "]" and the top-level keys after it
                break
    return _finish(carry, header, cols, _Tables((os.getpid(), id(carry)), cols.shapes_for))


def _ranges(
    raw: Any,
    size: int,
    header: bytes,
    sep: bytes,
    first: int,
    cols: _Columns,
    progress: Progress | None,
    block: int,
    n_workers: int,
) -> L._Trace:
    """An uncompressed file, events from offset `first`: find the cuts by reading a little around
    every `block` bytes, then decode the ranges between them (in workers too, when there are)."""
    window = 1 << 20
    # The last separator in the file: the last event and the closing keys come after it.
    last, pos = -1, size
    while last < 0 and pos > first:
        lo = max(first, pos - window)
        raw.seek(lo)
        chunk = raw.read(pos - lo + len(sep))
        i = chunk.rfind(sep)
        last = lo + i if i >= 0 else -1
        pos = lo
    cuts = [first]  # block starts; a block ends at the "}" before the next start's separator
    ends = []
    # The last blocks are a quarter size: the workers then finish close together, instead of
    # one idling while another decodes a whole last block.
    tail = 2 * n_workers * block if n_workers > 1 else 0
    pos = first + block
    while last > 0 and pos < last:
        raw.seek(pos)
        chunk = raw.read(window)
        i = chunk.find(sep)
        if i < 0:
            pos += max(1, len(chunk) - len(sep))
            continue
        cut = pos + i
        if cut >= last:
            break
        ends.append(cut + 1)
        cuts.append(cut + len(sep) - 1)
        pos = cut + (block if last - cut > tail else max(block // 4, 1))
    ranges = list(zip(cuts, [*ends, last + 1], strict=True)) if last > 0 else []
    done = first

    def merged(nbytes: int) -> None:
        nonlocal done
        done += nbytes
        if progress is not None:
            progress(done, size)

    with _InOrder(cols, n_workers if len(ranges) > 1 else 1, merged) as decoder:
        for a, b in ranges:
            decoder.submit(_decode_range, (raw.name, a, b), b - a)
    raw.seek(last + len(sep) - 1 if last > 0 else first)
    tail = raw.read()
    if progress is not None:
        progress(size, size)
    return _finish(tail, header, cols, _Tables((os.getpid(), id(tail)), cols.shapes_for))


def _finish(rest: bytes, header: bytes, cols: _Columns, tables: _Tables) -> L._Trace:
    """Decode the last event and the top-level keys after the event list."""
    for m in _LAST.finditer(rest):
        buf = bytearray(b"[" + rest[: m.start() + 1] + b"]")
        try:
            last = _DECODER.decode(buf)
            top = L._TRACE_DECODER.decode(header + b"]" + rest[m.end() :])
        except msgspec.DecodeError:
            continue
        cols.merge(_columnize(last, tables))
        return top
    raise _Bail
