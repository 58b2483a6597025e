"""The load stage's output and the raw shapes it decodes from: event kinds, columns, the trace.

Every later stage reads `Events` (one numpy column per field, one row per kept event) and
`Trace`; both readers (whole-file, streamed) produce them, and both decode the trace's top level
into `RawTrace`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import msgspec
import numpy as np

# Event kinds, as small ints in the `kind` column.
# Flow events ("s"/"f": ac2g launch→kernel, fwdbwd forward→backward) are not kept: the same links
# are in every kernel's and runtime call's "correlation" arg and every op's "Sequence number".
OTHER, CPU_OP, USER_ANNOTATION, PYTHON_FUNCTION, RUNTIME, KERNEL, MEMCPY, MEMSET, GPU_USER_ANNOTATION = range(9)
GPU_KINDS = (KERNEL, MEMCPY, MEMSET)

# Category names differ by producer era and vendor: torch 1.8-1.10 wrote "Operator", "Runtime",
# "Kernel", "Memcpy", "Memset"; later Kineto "cpu_op", "cuda_runtime", "kernel", "gpu_memcpy"…;
# ROCm builds reuse the CUDA names for HIP calls. Matched case-insensitively (kind_of_category).
CATEGORY_KIND = {
    "cpu_op": CPU_OP,
    "operator": CPU_OP,  # torch 1.8-1.10
    "user_annotation": USER_ANNOTATION,
    "python_function": PYTHON_FUNCTION,
    "cuda_runtime": RUNTIME,
    "cuda_driver": RUNTIME,
    "runtime": RUNTIME,  # torch 1.8-1.10
    "hip_runtime": RUNTIME,
    "kernel": KERNEL,
    "gpu_memcpy": MEMCPY,
    "memcpy": MEMCPY,  # torch 1.8-1.10
    "gpu_memset": MEMSET,
    "memset": MEMSET,  # torch 1.8-1.10
    "gpu_user_annotation": GPU_USER_ANNOTATION,
}


def kind_of_category(cat: str | None) -> int:
    """The kind of a complete event of this category (OTHER when unknown)."""
    if cat is None:
        return OTHER
    got = CATEGORY_KIND.get(cat)
    if got is None:
        low = cat.lower()
        got = CATEGORY_KIND.get(low)
        if got is None:  # xpu_runtime, mtia_runtime, privateuse1_driver…: another device's launch calls
            got = RUNTIME if low.endswith(("_runtime", "_driver")) else OTHER
    return got


NO_ID = -1


def category_counts(counts: dict[Any, int]) -> tuple[tuple[str, int], ...]:
    """Category → count, most first, a missing category as ""."""
    merged: dict[str, int] = {}
    for cat, n in counts.items():
        key = cat if isinstance(cat, str) else ""
        merged[key] = merged.get(key, 0) + n
    return tuple(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def of_kinds(kind: np.ndarray, kinds: tuple[int, ...]) -> np.ndarray:
    """Per row: is its kind one of `kinds`. A 256-entry table read by the uint8 codes: ~4x
    faster than np.isin, which sorts (14 vs 4 ms on 735k rows)."""
    table = np.zeros(256, bool)
    table[list(kinds)] = True
    return table[kind]


# Which CPU ops' shape arguments to keep, by op name (None: every op's). Shapes are only read
# for FLOPs, and numbering them costs a third of a million-event load when every op keeps them.
ShapesFor = Callable[[str], bool] | None


EMPTY_RAW = msgspec.Raw()


# Args are optional annotations whose types differ between exporters (ROCm writes "bytes": "4096"
# and "stream": "0x7f…" as strings), so they decode as any JSON value and are parsed leniently
# (as_int, as_float): an odd value is ignored, never fatal. The event's own fields stay typed.
class RawArgs(msgspec.Struct, gc=False):
    external_id: Any = msgspec.field(default=None, name="External id")
    external_id_old: Any = msgspec.field(default=None, name="external id")  # torch 1.8-1.10
    correlation: Any = None
    input_dims: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Concrete Inputs")
    seq: Any = msgspec.field(default=None, name="Sequence number")
    fwd_tid: Any = msgspec.field(default=None, name="Fwd thread id")
    stream: Any = None
    device: Any = None
    py_id: Any = msgspec.field(default=None, name="Python id")
    py_parent: Any = msgspec.field(default=None, name="Python parent id")
    nbytes: Any = msgspec.field(default=None, name="bytes")
    coll_name: Any = msgspec.field(default=None, name="Collective name")
    in_nelems: Any = msgspec.field(default=None, name="In msg nelems")
    out_nelems: Any = msgspec.field(default=None, name="Out msg nelems")
    group_size: Any = msgspec.field(default=None, name="Group size")
    comm_dtype: Any = msgspec.field(default=None, name="dtype")
    name: Any = None  # thread/process names of "M" events


class RawEvent(msgspec.Struct, gc=False):
    ph: str = ""
    cat: str | None = None
    name: str | None = None
    pid: int | str | None = None
    tid: int | str | None = None
    ts: int | float | None = None  # int kept exact: ns epoch timestamps exceed float64's 2**53
    dur: int | float | None = None
    args: RawArgs | None = None


class RawTrace(msgspec.Struct, gc=False):
    traceEvents: list[RawEvent]
    # Top-level extras: any JSON value; load_trace keeps those of the expected type.
    deviceProperties: Any = None
    distributedInfo: Any = None
    traceparse: Any = None
    schemaVersion: Any = None
    displayTimeUnit: Any = None
    baseTimeNanoseconds: Any = None


TRACE_DECODER = msgspec.json.Decoder(RawTrace)
ARRAY_DECODER = msgspec.json.Decoder(list[RawEvent])


@dataclass(frozen=True, slots=True)
class ShapeArgs:
    """One distinct set of a CPU op's shape arguments, as raw JSON (decoded only for the ops whose
    FLOPs are counted). Ops share it: a model repeats the same shapes in every layer and step."""

    dims: msgspec.Raw  # "Input Dims"
    types: msgspec.Raw | None  # "Input type"
    concrete: msgspec.Raw | None  # "Concrete Inputs"


@dataclass(frozen=True, slots=True)
class CommArgs:
    """One distinct set of a collective kernel's arguments, as the trace records them."""

    collective: str  # "allreduce", "_allgather_base", "reduce_scatter_tensor", "send", …
    in_nelems: int | None  # elements in (per rank)
    out_nelems: int | None
    group_size: int | None
    dtype: str | None  # "Float", "BFloat16", …

    @staticmethod
    def key(collective: Any, in_nelems: Any, out_nelems: Any, group: Any, dtype: Any) -> tuple[Any, ...] | None:
        """The hashable key of a kernel's collective arguments; None when it names no collective."""
        if not isinstance(collective, str) or not collective:
            return None
        return (
            collective,
            as_int(in_nelems),
            as_int(out_nelems),
            as_int(group),
            dtype if isinstance(dtype, str) else None,
        )

    @classmethod
    def of_key(cls, key: tuple[Any, ...]) -> CommArgs:
        name, n_in, n_out, group, dtype = key

        def known(v: int) -> int | None:
            return None if v == NO_ID else v

        return cls(name, known(n_in), known(n_out), known(group), dtype)


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
    external_id: np.ndarray  # int64, of CPU ops and GPU items (what links them)
    correlation: np.ndarray  # int64, of runtime calls and GPU items (launch → kernel)
    seq: np.ndarray  # int64 autograd sequence number
    fwd_tid: np.ndarray  # int64
    stream: np.ndarray  # int64
    device: np.ndarray  # int64
    py_id: np.ndarray  # int64
    py_parent: np.ndarray  # int64
    nbytes: np.ndarray  # float64 (memcpy/memset)
    shape: np.ndarray  # int32 index into `shapes`; NO_ID: not a CPU op with "Input Dims"
    shapes: tuple[ShapeArgs, ...]  # in order of first appearance
    shapes_recorded: bool  # some CPU op has "Input Dims" (record_shapes), kept or not
    # Categories of complete events no stage reads ("Trace", a vendor's device events…): count.
    other_categories: tuple[tuple[str, int], ...] = ()
    # Collective kernels' arguments (NCCL/RCCL kernels carry them since torch 2.1): per row a code
    # into `comms`, NO_ID elsewhere; None when no kernel of the trace has them.
    comm: np.ndarray | None = None
    comms: tuple[CommArgs, ...] = ()

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def shape_of(self, row: int) -> ShapeArgs | None:
        code = int(self.shape[row])
        return self.shapes[code] if code >= 0 else None


@dataclass(frozen=True)
class Trace:
    path: str
    events: Events
    metadata: dict[str, Any]  # the "traceparse" key written by `capture`, or {}
    device_properties: list[dict[str, Any]]
    distributed_info: dict[str, Any]
    source_format: str  # "object" or "array" (Chrome's JSON-array form)
    dropped_events: int  # complete events skipped for a missing or out-of-range ts/dur
    notes: tuple[str, ...] = ()  # what loading repaired or ignored (ns timestamps, bad metadata…)


class Interner:
    """Map strings (or mixed ids) to dense ints, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if value is None:
            return NO_ID
        if isinstance(value, int) and _INT64_MIN < value <= _INT64_MAX:
            return value
        got = self.index.get(value)
        if got is None:
            # Strings get negative ids below NO_ID so they never collide with real ints.
            got = self.index[value] = -2 - len(self.index)
        return got


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def as_int(value: Any) -> int:
    """An id from any JSON value: ints, integral floats, decimal or 0x-hex strings; else NO_ID."""
    if value is None or isinstance(value, bool):
        return NO_ID
    if not isinstance(value, int):
        try:
            value = int(value, 0) if isinstance(value, str) else int(value)
        except (TypeError, ValueError, OverflowError):
            return NO_ID
    return value if _INT64_MIN < value <= _INT64_MAX else NO_ID


def as_float(value: Any) -> float:
    """A byte count from any JSON value (ROCm writes "bytes": "4096"); 0.0 when unusable."""
    if isinstance(value, bool):
        return 0.0
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def select_rows(ev: Events, rows: np.ndarray) -> Events:
    """The events at `rows`: every per-row column taken; the tables (names, shapes) kept whole."""
    n = len(ev)
    out: dict[str, Any] = {}
    for f in fields(Events):
        value = getattr(ev, f.name)
        out[f.name] = value[rows] if isinstance(value, np.ndarray) and value.shape[:1] == (n,) else value
    return Events(**out)


NS_MAGNITUDE = 1e17  # a µs timestamp this large would be after the year 5000: it is ns
