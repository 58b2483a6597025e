"""Blocks of Kineto JSON → columns: the decoding half of the streamed reader (stream.py).

Each block (a JSON array of whole events) is decoded by msgspec into small structs with strict
field types, which become numpy columns through C-level `map(attrgetter)` passes and value→code
tables (no per-event Python statements); events of other phases (flows are a quarter of a Kineto
trace) decode into field-less structs, so msgspec only skips over them. Runs in worker processes
(`init_worker`) or in the reading process; the rules are the whole-file reader's (`whole.columns`).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Union, cast

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


@dataclass
class Tables:
    """Value → code tables of one process, kept across the blocks it decodes: a name, pid or
    shape seen in an earlier block is then one dict lookup inside a C-level pass."""

    token: tuple[int, int] = (0, 0)
    shapes_for: ShapesFor = None
    lut: dict[str, dict[Any, int]] = field(default_factory=lambda: {k: {} for k in TABLES})
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


def columnize(evs: list[_Event], tables: Tables, comms: bool = True) -> Block:
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
    try:
        kind = np.fromiter(map(_CAT_CODES.__getitem__, map(g["cat"], x)), np.uint8, m)
    except KeyError:
        cats = list(map(g["cat"], x))
        for c in dict.fromkeys(cats):
            _CAT_CODES.setdefault(c, _cat_code(c))
        kind = np.fromiter(map(_CAT_CODES.__getitem__, cats), np.uint8, m)
    other = np.flatnonzero(kind == OTHER)
    if other.size:
        out.other_cats = dict(Counter(map(g["cat"], _take(x, other))))

    lut, new = tables.lut, out.new
    out.codes = {k: _lookup(lut[k], new[k], g[k], x, np.int64) for k in ("name", "pid", "tid")}
    c = out.cols
    c["kind"], c["ts"], c["dur"] = kind, ts, dur
    args = list(map(g["args"], x))
    is_cpu = kind == CPU_OP
    # Each arg is gathered only from the rows of the kinds that carry it (as in the full path).
    for name in INT_COLS:
        c[name] = np.full(m, NO_ID, np.int64)
    c["nbytes"] = np.zeros(m)
    for mask, fields in (
        (is_cpu, ("external_id", "external_id_old", "seq", "fwd_tid")),
        (
            of_kinds(kind, GPU_KINDS),
            ("external_id", "external_id_old", "correlation", "stream", "device", "nbytes"),
        ),
        (kind == RUNTIME, ("correlation",)),
        (kind == PYTHON_FUNCTION, ("py_id", "py_parent")),
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
    shape = out.codes["shape"] = np.full(m, NO_ID, np.int64)
    if has.size:
        with_dims = _take(cpu_args, has)
        keys = list(
            map(NUL.join, zip(map(_DIMS, with_dims), map(_TYPES, with_dims), map(_CONCRETE, with_dims), strict=True))
        )
        shape[cpu[has]] = _lookup(lut["shape"], new["shape"], None, keys, np.int64)
    gpu = np.flatnonzero(of_kinds(kind, GPU_KINDS)) if comms else np.empty(0, np.int64)
    out.codes["comm"] = _comm_codes(args, gpu, m, tables, new)
    return out


_COMM_FIELDS = tuple(attrgetter(f) for f in ("coll_name", "in_nelems", "out_nelems", "group_size", "comm_dtype"))


def _comm_codes(args: list[Any], gpu: np.ndarray, m: int, tables: Tables, new: dict[str, list[Any]]) -> np.ndarray:
    """Per row: a local code of its collective arguments (NCCL/RCCL kernels), NO_ID elsewhere."""
    codes = np.full(m, NO_ID, np.int64)
    gpu_args = _take(args, gpu)
    named = [i for i, name in enumerate(map(_COMM_FIELDS[0], gpu_args)) if name is not None]
    if named:
        keys = [CommArgs.key(*(get(gpu_args[i]) for get in _COMM_FIELDS)) for i in named]
        codes[gpu[named]] = _lookup(tables.lut["comm"], new["comm"], None, keys, np.int64)
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


_COMM_KEY = b'"Collective name"'


def decode_text(text: bytearray | memoryview, tables: Tables | None = None) -> Block:
    """Decode one block's text (a JSON array of whole events). Collective arguments are looked
    for only in a block whose text names one (a byte search, not a pass over every kernel)."""
    if isinstance(text, memoryview):  # a view of the reused read buffer: search the buffer itself
        comms = cast(bytearray, text.obj).find(_COMM_KEY, 0, text.nbytes) >= 0
    else:
        comms = text.find(_COMM_KEY) >= 0
    return columnize(DECODER.decode(text), tables or _WORKER_TABLES, comms)


def fill(stream: Any, view: memoryview) -> int:
    """readinto until the view is full or the stream ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def init_worker(shapes_for: ShapesFor) -> None:
    global _WORKER_TABLES
    _WORKER_TABLES = Tables((os.getpid(), 0), shapes_for)
