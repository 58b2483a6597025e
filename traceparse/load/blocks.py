"""Blocks of Kineto JSON → columns: the decoding half of the streamed reader (stream.py).

Each block (a JSON array of whole events) is decoded by msgspec into small structs with strict
field types, which become numpy columns through C-level `map(attrgetter)` passes and value→code
tables (no per-event Python statements); events of other phases (flows are a quarter of a Kineto
trace) decode into field-less structs, so msgspec only skips over them. Runs in worker processes
(`init_worker`) or in the reading process; the rules are the whole-file reader's (`whole.columns`).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Union

import msgspec
import numpy as np

from traceparse.load.schema import (
    CATEGORY_KIND,
    CPU_OP,
    EMPTY_RAW,
    GPU_KINDS,
    NO_ID,
    OTHER,
    PYTHON_FUNCTION,
    RUNTIME,
    CommArgs,
    ShapesFor,
    kind_of_category,
    of_kinds,
)

_NAN = math.nan


class Bail(Exception):
    """The full path must decide (an unusual but possibly valid trace, or a malformed one)."""


class _Args(msgspec.Struct, gc=False, frozen=True):
    external_id: int | None = msgspec.field(default=NO_ID, name="External id")
    external_id_old: int | None = msgspec.field(default=NO_ID, name="external id")  # torch 1.8-1.10
    correlation: int | None = NO_ID
    input_dims: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Concrete Inputs")
    seq: int | None = msgspec.field(default=NO_ID, name="Sequence number")
    fwd_tid: int | None = msgspec.field(default=NO_ID, name="Fwd thread id")
    stream: int | None = NO_ID
    device: int | None = NO_ID
    py_id: int | None = msgspec.field(default=NO_ID, name="Python id")
    py_parent: int | None = msgspec.field(default=NO_ID, name="Python parent id")  # null at a root frame
    nbytes: float | None = msgspec.field(default=0.0, name="bytes")
    coll_name: str | None = msgspec.field(default=None, name="Collective name")
    in_nelems: int | None = msgspec.field(default=None, name="In msg nelems")
    out_nelems: int | None = msgspec.field(default=None, name="Out msg nelems")
    group_size: int | None = msgspec.field(default=None, name="Group size")
    comm_dtype: str | None = msgspec.field(default=None, name="dtype")


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
DECODER = msgspec.json.Decoder(list[Union[(_Event, *_SKIPPED)]])  # type: ignore[valid-type]
_FIELDS = ("cat", "name", "pid", "tid", "ts", "dur", "args")
_G = {k: attrgetter(k) for k in (*_FIELDS, *(f"args.{f}" for f in _Args.__struct_fields__))}
_A = {f: attrgetter(f) for f in _Args.__struct_fields__}
_DIMS, _TYPES, _CONCRETE = _A["input_dims"], _A["input_type"], _A["concrete"]
NUL = b"\x00"
INT_COLS = ("external_id", "correlation", "seq", "fwd_tid", "stream", "device", "py_id", "py_parent")


def _ints(get: Callable[[Any], Any], items: list[Any]) -> np.ndarray:
    """int64 column of get(item) (ints or None: NO_ID); bails on an int outside int64, which the
    full path treats as missing. fromiter over a map: no intermediate list."""
    n = len(items)
    try:
        arr = np.fromiter(map(get, items), np.int64, n)
    except TypeError:  # None among them
        arr = np.fromiter((NO_ID if v is None else v for v in map(get, items)), np.int64, n)
    except OverflowError:
        raise Bail from None
    if n and arr.min() == np.iinfo(np.int64).min:
        raise Bail
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


_cat_code = kind_of_category
_CAT_CODES: dict[Any, int] = {c: _cat_code(c) for c in (None, *CATEGORY_KIND)}


TABLES = ("name", "pid", "tid", "shape", "comm")
_WHO = attrgetter("cat", "name", "pid", "tid")


class _Numbering(dict[Any, int]):
    """Value → local code, numbered on first sight by __missing__ (dict calls it for a subclass
    on a failed lookup), which also lists the value in `new`: the block being decoded's list of
    values this process had not seen. `map(numbering.__getitem__, values)` then codes a whole
    column in one C-level pass, new values or not."""

    def __init__(self) -> None:
        super().__init__()
        self.new: list[Any] = []

    def __missing__(self, value: Any) -> int:
        code = self[value] = len(self)
        self.new.append(value)
        return code


class _Combos(dict[tuple[Any, Any, Any, Any], int]):
    """(cat, name, pid, tid) → a code of that combination, numbered on first sight by __missing__
    (which dict calls for a subclass: no exception, no second pass). A trace has few such
    combinations, so one C-level pass with one lookup per event gives its kind, name, pid and tid
    codes: the events are touched once instead of four times (on a million events, half the
    cost of those four passes). A new combination numbers its name, pid and tid in their own
    tables, so each table still numbers values in the order a sequential read meets them."""

    def __init__(self, tables: Tables) -> None:
        super().__init__()
        self.tables = tables
        self.parts: tuple[list[int], ...] = ([], [], [], [])  # per combination: kind, name, pid, tid codes
        self.arrays = np.empty((4, 0), np.int32)  # the parts as arrays (rebuilt when combinations are added)

    def __missing__(self, key: tuple[Any, Any, Any, Any]) -> int:
        cat, *values = key
        kind = _CAT_CODES.get(cat)
        if kind is None:
            kind = _CAT_CODES[cat] = _cat_code(cat)
        self.parts[0].append(kind)
        lut = self.tables.lut
        for part, table, value in zip(self.parts[1:], ("name", "pid", "tid"), values, strict=True):
            part.append(lut[table][value])
        code = self[key] = len(self)
        return code

    def split(self, combos: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per event: its kind (uint8), name, pid and tid codes (int32)."""
        if self.arrays.shape[1] < len(self):
            self.arrays = np.array(self.parts, np.int32)
        kind, name, pid, tid = self.arrays[:, combos]
        return kind.astype(np.uint8), name, pid, tid


@dataclass
class Tables:
    """Value → code tables of one process, kept across the blocks it decodes: a name, pid or
    shape seen in an earlier block is then one dict lookup inside a C-level pass."""

    token: tuple[int, int] = (0, 0)
    shapes_for: ShapesFor = None
    lut: dict[str, _Numbering] = field(default_factory=lambda: {k: _Numbering() for k in TABLES})
    wants_shapes: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # per name code
    combos: _Combos = field(init=False)

    def __post_init__(self) -> None:
        self.combos = _Combos(self)

    def start(self, new: dict[str, list[Any]]) -> None:
        """Values first seen from now on go to these lists (a new block's)."""
        for table, numbering in self.lut.items():
            numbering.new = new[table]

    def names_wanting_shapes(self, codes: np.ndarray) -> np.ndarray:
        """Per name code: does the caller want this op's shape arguments (extended for new names)."""
        names = self.lut["name"]
        if self.wants_shapes.size < len(names):
            new = list(names)[self.wants_shapes.size :]
            keep = self.shapes_for
            more = [keep is None or keep(n or "") for n in new]  # a missing name is "" (as merged)
            self.wants_shapes = np.concatenate([self.wants_shapes, np.array(more, bool)])
        return self.wants_shapes[codes]


_WORKER_TABLES = Tables()


@dataclass
class Block:
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


def _codes(numbering: _Numbering, values: Iterable[Any], n: int) -> np.ndarray:
    """Local codes (int32: a block's codes are far fewer than 2**31) of n values, in one pass."""
    return np.fromiter(map(numbering.__getitem__, values), np.int32, n)


def columnize(evs: list[_Event], tables: Tables) -> Block:
    """The kept events of one decoded block as columns (the rules of `load._columns`)."""
    out = Block(tables.token, new={k: [] for k in TABLES})
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
    tables.start(out.new)
    combos = tables.combos
    kind, *who = combos.split(np.fromiter(map(combos.__getitem__, map(_WHO, x)), np.int64, m))
    out.codes = dict(zip(("name", "pid", "tid"), who, strict=True))
    other = np.flatnonzero(kind == OTHER)
    if other.size:
        out.other_cats = dict(Counter(map(g["cat"], _take(x, other))))

    c = out.cols
    c["kind"], c["ts"], c["dur"] = kind, ts, dur
    args = list(map(g["args"], x))
    is_cpu = kind == CPU_OP
    # Each arg is gathered only from the rows of the kinds that carry it (as in the full path).
    for name in INT_COLS:
        c[name] = np.full(m, NO_ID, np.int64)
    c["nbytes"] = np.zeros(m)
    gpu = np.flatnonzero(of_kinds(kind, GPU_KINDS))
    gpu_args: list[Any] = []
    for at, fields in (
        (np.flatnonzero(is_cpu), ("external_id", "external_id_old", "seq", "fwd_tid")),
        (gpu, ("external_id", "external_id_old", "correlation", "stream", "device", "nbytes")),
        (np.flatnonzero(kind == RUNTIME), ("correlation",)),
        (np.flatnonzero(kind == PYTHON_FUNCTION), ("py_id", "py_parent")),
    ):
        if not at.size:
            continue
        some = _take(args, at)
        if at is gpu:
            gpu_args = some
        for name in fields:
            if name == "nbytes":
                vals = _floats(_A[name], some)
                c[name][at] = np.where(np.isfinite(vals), vals, 0.0)
            elif name == "external_id_old":  # read only where the current spelling is absent
                missing = np.flatnonzero(c["external_id"][at] == NO_ID)
                if missing.size:
                    c["external_id"][at[missing]] = _ints(_A[name], _take(some, missing))
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
    shape = out.codes["shape"] = np.full(m, NO_ID, np.int32)
    if has.size:
        with_dims = _take(cpu_args, has)
        keys = map(NUL.join, zip(map(_DIMS, with_dims), map(_TYPES, with_dims), map(_CONCRETE, with_dims), strict=True))
        shape[cpu[has]] = _codes(tables.lut["shape"], keys, has.size)
    out.codes["comm"] = _comm_codes(gpu_args, gpu, m, tables)
    return out


_COMM_FIELDS = tuple(attrgetter(f) for f in ("coll_name", "in_nelems", "out_nelems", "group_size", "comm_dtype"))


def _comm_codes(gpu_args: list[Any], gpu: np.ndarray, m: int, tables: Tables) -> np.ndarray:
    """Per row: a local code of its collective arguments (NCCL/RCCL kernels), NO_ID elsewhere.
    Most traces have none: a C-level `any` over the kernels' collective names, which were just
    read for their ids, says so (cheaper than searching the block's text for the key)."""
    codes = np.full(m, NO_ID, np.int32)
    if not any(map(_COMM_FIELDS[0], gpu_args)):  # None or "": CommArgs.key takes neither
        return codes
    named = [i for i, name in enumerate(map(_COMM_FIELDS[0], gpu_args)) if name is not None]
    if named:
        keys = [CommArgs.key(*(get(gpu_args[i]) for get in _COMM_FIELDS)) for i in named]
        codes[gpu[named]] = _codes(tables.lut["comm"], keys, len(keys))
    return codes


_BUFFER = bytearray()  # reused from block to block: fresh 16 MiB buffers cost page faults


def decode_range(path: str, start: int, end: int, tables: Tables | None = None) -> Block:
    """Decode the events in bytes [start, end) of the file (whole events, comma separated)."""
    global _BUFFER
    n = end - start + 2
    if len(_BUFFER) < n:
        _BUFFER = bytearray(n)
    view = memoryview(_BUFFER)[:n]  # never resized in place: a new one is bound when too small
    view[0], view[n - 1] = 0x5B, 0x5D  # "[", "]"
    with open(path, "rb") as f:
        f.seek(start)
        if fill(f, view[1 : n - 1]) != n - 2:
            raise Bail
    return decode_text(view, tables)


def decode_mapped(path: str, start: int, end: int, tables: Tables | None = None) -> Block:
    """decode_range in a worker process, through a private (copy-on-write) mapping of the file
    instead of a copy into a buffer: the byte before the range and the one after it (blanks or a
    separator's ",") become "[" and "]" in this process's copy of their page. ~0.1 s less CPU for
    the workers on a million events. A file cut short meanwhile would kill the worker (SIGBUS):
    the load then starts over in the parent, which reads (decode_range) and reports it."""
    lo = (start - 1) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), end + 1 - lo, access=mmap.ACCESS_COPY, offset=lo)
    except (OSError, ValueError):  # not mappable (a pipe, some FUSE file systems): read it
        return decode_range(path, start, end, tables)
    try:
        a, b = start - 1 - lo, end - lo
        mapped[a], mapped[b] = 0x5B, 0x5D  # "[", "]"
        return decode_text(memoryview(mapped)[a : b + 1], tables)
    finally:
        with contextlib.suppress(BufferError):  # a failed decode's traceback still holds a view
            mapped.close()


def decode_text(text: bytearray | memoryview, tables: Tables | None = None) -> Block:
    """Decode one block's text (a JSON array of whole events).

    The decoded list is held here until columnize returns and then freed whole, in file order.
    Passed as a bare argument, it was freed inside columnize's teardown after its subsets, and
    the next blocks' passes over their structs ran ~25% slower (1.8 vs 1.4 s in one process on a
    million events; memory handed back out of file order is the likely cause)."""
    evs = DECODER.decode(text)
    block = columnize(evs, tables or _WORKER_TABLES)
    del evs
    return block


# A gzip's blocks, in memory shared with the process that inflates them (gzipped.Ring's mapping,
# inherited when the worker forks): the text is not pickled through a pipe and copied twice.
_SHARED: Any = None


def decode_shared(start: int, n: int, tables: Tables | None = None) -> Block:
    """Decode the block of n bytes at `start` of the shared buffers. The block's structs are
    gone when this returns (their raw shape texts were copied into keys), so the writer may
    reuse that part of the buffer as soon as the result is back."""
    return decode_text(memoryview(_SHARED)[start : start + n], tables)


def fill(stream: Any, view: memoryview) -> int:
    """readinto until the view is full or the stream ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def init_worker(shapes_for: ShapesFor, shared: Any = None) -> None:
    global _WORKER_TABLES, _SHARED
    _WORKER_TABLES = Tables((os.getpid(), 0), shapes_for)
    _SHARED = shared
