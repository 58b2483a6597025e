"""`traceparse annotate`: the original trace plus tracks that show blocks and modules on the GPU.

The output opens in ui.perfetto.dev like the input; for every GPU stream it adds one process
("traceparse · GPU d stream s") holding:

  * "blocks" tracks: one slice per block call, from its first kernel's start to its last kernel's
    end on that stream, named "block i · kind";
  * "modules" tracks: one slice per module call, nested like the module tree;
  * counter tracks "block TFLOP/s" and, where the trace records memcpy/memset bytes, "block
    copy GB/s" (copy bytes only: kernels' own memory traffic is not in a torch.profiler trace).

A call that ran in more than one phase (forward and the backward attributed to it) gets one
slice per phase. Slice args carry self and inclusive kernel ms, the span, the kernel count,
FLOPs and TFLOP/s (inclusive FLOPs / inclusive kernel time, as in the report).

Perfetto requires the slices of one track to nest strictly. Module spans on the GPU can overlap a
sibling's (kernels of consecutive modules overlap by a fraction of a microsecond with
programmatic dependent launch), so slices are packed into lanes: each goes to its parent's lane
when it nests there, else to the first lane where it nests, else to a new lane ("modules · lane
2"). Times are integers of nanoseconds throughout (the trace's own resolution), written as exact
decimal microseconds, and `check_nesting` verifies every track before anything is written.

The original events are kept byte for byte and in order (each is passed through as raw JSON);
the new events are appended, on pids and tids that no original event uses, named by "M" events.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from traceparse import __version__
from traceparse.atomic import write_bytes_atomic
from traceparse.blocks import find_blocks
from traceparse.errors import UnreadableError, UsageError
from traceparse.flops.count import KINDS
from traceparse.flops.formulas import TENSOR_KINDS
from traceparse.load import MEMCPY, MEMSET, find_trace_in_dir
from traceparse.scopes import FORWARD, PHASE_NAMES

if TYPE_CHECKING:
    from traceparse.api import Analysis

CATEGORY = "traceparse"
FIRST_NEW_ID = 2_000_000_000  # new pids/tids: far from real ids and from Perfetto's interned-string ids
_SORT_BASE = 5_001_000  # after Kineto's GPU processes (5_000_000 + device), before its "Spans"


class NestingError(ValueError):
    """Two slices on one track overlap without one containing the other (a bug)."""


class _Ids(msgspec.Struct, gc=False):
    ph: str | None = None
    pid: int | float | str | None = None
    tid: int | float | str | None = None
    ts: int | float | str | None = None


@dataclass(frozen=True)
class Slice:
    start_ns: int
    end_ns: int
    name: str
    depth: int  # module depth (for ordering parents before equal-span children)
    key: tuple[int, int, int]  # (stream group, phase, call)
    parent: tuple[int, int, int] | None
    args: dict[str, Any]


@dataclass
class Summary:
    original_events: int = 0
    added_events: int = 0
    slices: int = 0
    tracks: list[str] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.original_events} original events kept, {self.added_events} added "
            f"({self.slices} slices on {len(self.tracks)} tracks; counters: {', '.join(self.counters) or 'none'})"
        )


# ---- times ---------------------------------------------------------------------------------------


def to_ns(us: np.ndarray) -> np.ndarray:
    """Microseconds (as parsed from the trace's decimal text) → exact integer nanoseconds.

    Split off the integer part first: the fraction is exact in floating point, and ×1000 of a
    fraction stays within half a nanosecond of the written decimal up to ts ≈ 2^43 µs.
    """
    us = np.asarray(us, dtype=np.float64)
    whole = np.floor(us)
    return whole.astype(np.int64) * 1000 + np.round((us - whole) * 1000.0).astype(np.int64)


def us_text(ns: int) -> msgspec.Raw:
    """Exact decimal microseconds for a JSON number (Perfetto parses the digits, not a float)."""
    sign = "-" if ns < 0 else ""
    q, r = divmod(abs(int(ns)), 1000)
    return msgspec.Raw(f"{sign}{q}.{r:03d}".encode())


# ---- slices --------------------------------------------------------------------------------------


def _ancestor_pairs(start: np.ndarray, call: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, call) for every row and every call on the path from its own call up to the root."""
    rows_out, calls_out = [], []
    rows, cur = start, call
    while rows.size:
        rows_out.append(rows)
        calls_out.append(cur)
        up = parent[cur]
        ok = up >= 0
        rows, cur = rows[ok], up[ok]
    if not rows_out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows_out), np.concatenate(calls_out)


def build_slices(analysis: Analysis) -> tuple[dict[int, tuple[int, int]], list[Slice], list[Slice], list[str]]:
    """Stream groups (id → (device, stream)), module slices, block slices, and notes."""
    attr = analysis.attribution
    calls, items, ev = attr.calls, attr.items, attr.index.events
    if attr.mode == "cpu" or len(attr.index.gpu) == 0:
        raise UsageError("the trace has no GPU kernels: annotate adds GPU tracks, there is nothing to place")
    if len(calls) == 0:
        raise UsageError(
            "the trace has no module calls (no traceparse scopes, no with_stack events): nothing to annotate; "
            "capture with `traceparse capture` (or with_stack=True)"
        )
    rows = items.event_row
    device = np.where(ev.device[rows] >= 0, ev.device[rows], ev.pid[rows])
    stream = np.where(ev.stream[rows] >= 0, ev.stream[rows], ev.tid[rows])
    pairs = np.unique(np.stack([device, stream], axis=1), axis=0)
    groups = {g: (int(d), int(s)) for g, (d, s) in enumerate(pairs)}
    group_of = {v: g for g, v in groups.items()}
    group = np.array([group_of[(int(d), int(s))] for d, s in zip(device, stream, strict=True)], np.int64)

    start_ns = to_ns(ev.ts[rows])
    end_ns = start_ns + to_ns(np.maximum(ev.dur[rows], 0.0))
    is_copy = np.isin(ev.kind[rows], (MEMCPY, MEMSET))
    nbytes = np.where(is_copy, ev.nbytes[rows], 0.0)

    n_calls, n_phases = len(calls), len(PHASE_NAMES)
    own = np.flatnonzero(items.call >= 0)
    it, cl = _ancestor_pairs(own, items.call[own], calls.parent)
    is_self = np.zeros(it.size, bool)
    is_self[: own.size] = True
    phase = items.phase[it].astype(np.int64)
    key = (group[it] * n_phases + phase) * n_calls + cl
    uniq, inv = np.unique(key, return_inverse=True)
    n = uniq.size
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, inv, start_ns[it])
    np.maximum.at(last, inv, end_ns[it])
    dur = items.dur[it]
    incl_us = np.bincount(inv, weights=dur, minlength=n)
    self_us = np.bincount(inv, weights=np.where(is_self, dur, 0.0), minlength=n)
    kernels = np.bincount(inv, minlength=n)
    copy_bytes = np.bincount(inv, weights=nbytes[it], minlength=n)

    # FLOPs and all-stream kernel time per (phase, call), inclusive: TFLOP/s as in the report.
    fl = analysis.flops
    tmask = np.isin(fl.kind, [KINDS.index(k) for k in TENSOR_KINDS]) & (fl.call >= 0)
    f_rows, f_calls = _ancestor_pairs(np.flatnonzero(tmask), fl.call[tmask], calls.parent)
    flops_pc = np.bincount(fl.phase[f_rows].astype(np.int64) * n_calls + f_calls, fl.flops[f_rows], n_phases * n_calls)
    time_pc = np.bincount(phase * n_calls + cl, dur, n_phases * n_calls)
    has_shapes = fl.has_shapes

    blocks = find_blocks(calls, analysis.trace.metadata.get("blocks_container"), analysis.attribution.inclusive_us())
    block_of = _block_of(calls.parent, calls.depth, blocks.index_of_call)
    root_label = _root_labels(analysis)

    modules: list[Slice] = []
    block_slices: list[Slice] = []
    for j, k in enumerate(uniq.tolist()):
        gp, c = divmod(k, n_calls)
        g, p = divmod(gp, n_phases)
        pc = p * n_calls + c
        f = float(flops_pc[pc]) if has_shapes else None
        tfl = f / (float(time_pc[pc]) * 1e6) if f and time_pc[pc] > 0 else None
        b = int(block_of[c])
        suffix = "" if p == FORWARD else f" [{PHASE_NAMES[p]}]"
        qual, cls = str(calls.qual[c]), str(calls.cls[c])
        args: dict[str, Any] = {
            "module": qual,
            "class": cls,
            "phase": PHASE_NAMES[p],
            "self_ms": round(float(self_us[j]) / 1e3, 6),
            "inclusive_ms": round(float(incl_us[j]) / 1e3, 6),
            "span_ms": (int(last[j]) - int(first[j])) / 1e6,
            "kernels": int(kernels[j]),
            "flops": f,
            "tflops": None if tfl is None else round(tfl, 4),
            "copy_bytes": float(copy_bytes[j]),
            "step": int(calls.step[c]),
        }
        if b >= 0:
            args["block"] = b
            args["block_kind"] = blocks.kinds.get(b, "other")
        if c in root_label:
            args["forward"] = root_label[c]
            suffix += f" · {root_label[c]}"
        par = int(calls.parent[c])
        common = (int(first[j]), int(last[j]))
        modules.append(
            Slice(*common, qual + suffix, int(calls.depth[c]), (g, p, c), (g, p, par) if par >= 0 else None, args)
        )
        if blocks.index_of_call[c] >= 0:
            idx = int(blocks.index_of_call[c])
            name = f"block {idx} · {blocks.kinds.get(idx, 'other')}{suffix}"
            block_slices.append(Slice(*common, name, 0, (g, p, c), None, args))
    notes = []
    if not has_shapes:
        notes.append("no Input Dims in the trace: FLOPs and TFLOP/s are unknown (null)")
    return groups, modules, block_slices, notes


def _block_of(parent: np.ndarray, depth: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = index.copy()
    for d in range(int(depth.max()) + 1 if depth.size else 0):
        at = np.flatnonzero((depth == d) & (out < 0) & (parent >= 0))
        out[at] = out[parent[at]]
    return out


def _root_labels(analysis: Analysis) -> dict[int, str]:
    """Generate traces: root call → "prefill" / "decode N" (the report's split)."""
    if analysis.report.generation is None:
        return {}
    from traceparse.generation import find_forwards

    fw = find_forwards(analysis.attribution.calls)
    out: dict[int, str] = {}
    decode = 0
    for root, pre in zip(fw.roots.tolist(), fw.is_prefill.tolist(), strict=True):
        decode = 0 if pre else decode + 1
        out[int(root)] = "prefill" if pre else f"decode {decode}"
    return out


def assign_lanes(slices: list[Slice], prefer_parent: bool = True) -> list[list[Slice]]:
    """Pack slices into lanes in which every pair is disjoint or nested; parents before children."""
    lanes: list[list[Slice]] = []
    stacks: list[list[int]] = []  # per lane: end_ns of the open slices
    lane_of: dict[tuple[int, int, int], int] = {}
    for s in sorted(slices, key=lambda s: (s.start_ns, -s.end_ns, s.depth)):
        preferred = lane_of.get(s.parent) if (prefer_parent and s.parent is not None) else None
        order = ([preferred] if preferred is not None else []) + list(range(len(lanes)))
        for lane in order:
            stack = stacks[lane]
            while stack and stack[-1] <= s.start_ns:
                stack.pop()  # safe: every later slice starts at or after this one
            if not stack or s.end_ns <= stack[-1]:
                break
        else:
            lane = len(lanes)
            lanes.append([])
            stacks.append([])
        stacks[lane].append(s.end_ns)
        lanes[lane].append(s)
        lane_of[s.key] = lane
    return lanes


def check_nesting(spans: Iterable[tuple[int, int]], track: str = "") -> None:
    """Raise NestingError unless every two (start, end) spans are disjoint or one contains the other."""
    stack: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if end < start:
            raise NestingError(f"track {track!r}: slice ends before it starts ({start}..{end} ns)")
        while stack and stack[-1][1] <= start:
            stack.pop()
        if stack and end > stack[-1][1]:
            top = stack[-1]
            raise NestingError(
                f"track {track!r}: slice {start}..{end} ns overlaps {top[0]}..{top[1]} ns without nesting"
            )
        stack.append((start, end))


# ---- events --------------------------------------------------------------------------------------


def _counter(slices: list[Slice], value_of: Any) -> list[tuple[int, float]]:
    """A step function from slices: each slice's value while it runs (the latest started wins), else 0."""
    bounds = sorted({s.start_ns for s in slices} | {s.end_ns for s in slices})
    by_start = sorted(slices, key=lambda s: (s.start_ns, -s.end_ns))
    points: list[tuple[int, float]] = []
    active: list[Slice] = []
    i = 0
    for t in bounds:
        while i < len(by_start) and by_start[i].start_ns <= t:
            active.append(by_start[i])
            i += 1
        active = [s for s in active if s.end_ns > t]
        v = float(value_of(active[-1]) or 0.0) if active else 0.0
        if not points or points[-1][1] != v:
            points.append((t, v))
    return points


class _IdPool:
    def __init__(self, taken: set[int]) -> None:
        self.taken = taken
        self.next = FIRST_NEW_ID

    def __call__(self) -> int:
        while self.next in self.taken:
            self.next += 1
        self.taken.add(self.next)
        return self.next


def annotation_events(analysis: Analysis, taken_ids: set[int]) -> tuple[list[dict[str, Any]], Summary]:
    """The events to append: metadata, slices and counters, all on fresh pids/tids."""
    groups, modules, block_slices, notes = build_slices(analysis)
    new_id = _IdPool(set(taken_ids))
    out: list[dict[str, Any]] = []
    summary = Summary(notes=notes)
    by_group_mod: dict[int, list[Slice]] = defaultdict(list)
    by_group_blk: dict[int, list[Slice]] = defaultdict(list)
    for s in modules:
        by_group_mod[s.key[0]].append(s)
    for s in block_slices:
        by_group_blk[s.key[0]].append(s)
    any_bytes = any(s.args["copy_bytes"] > 0 for s in block_slices)
    for k, (g, (device, stream)) in enumerate(sorted(groups.items(), key=lambda kv: kv[1])):
        if not by_group_mod[g]:
            continue
        pid = new_id()
        pname = f"traceparse · GPU {device} stream {stream}"
        out.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": pname}})
        out.append({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": _SORT_BASE + k}})
        families = (
            ("blocks", assign_lanes(by_group_blk[g], False), 0),
            ("modules", assign_lanes(by_group_mod[g]), 100),
        )
        first_tid = None
        for family, lanes, sort0 in families:
            for lane_no, lane in enumerate(lanes):
                tid = new_id()
                first_tid = first_tid or tid
                tname = family if lane_no == 0 else f"{family} · lane {lane_no + 1}"
                check_nesting(((s.start_ns, s.end_ns) for s in lane), f"{pname} / {tname}")
                out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": tname}})
                out.append(
                    {
                        "name": "thread_sort_index",
                        "ph": "M",
                        "pid": pid,
                        "tid": tid,
                        "args": {"sort_index": sort0 + lane_no},
                    }
                )
                summary.tracks.append(f"{pname} / {tname}")
                for s in lane:
                    out.append(
                        {
                            "ph": "X",
                            "cat": CATEGORY,
                            "name": s.name,
                            "pid": pid,
                            "tid": tid,
                            "ts": us_text(s.start_ns),
                            "dur": us_text(s.end_ns - s.start_ns),
                            "args": {k2: v for k2, v in s.args.items() if v is not None},
                        }
                    )
                    summary.slices += 1
        blocks_here = by_group_blk[g]
        counters: list[tuple[str, list[tuple[int, float]]]] = []
        if blocks_here:
            counters.append(("TFLOP/s", _counter(blocks_here, lambda s: s.args["tflops"])))
            if any_bytes:
                counters.append(
                    (
                        "copy GB/s",
                        _counter(blocks_here, lambda s: s.args["copy_bytes"] / (s.args["inclusive_ms"] * 1e6 or 1.0)),
                    )
                )
        for label, points in counters:
            for t, v in points:
                out.append(
                    {
                        "ph": "C",
                        "cat": CATEGORY,
                        "name": "block",
                        "pid": pid,
                        "tid": first_tid,
                        "ts": us_text(t),
                        "args": {label: v},
                    }
                )
            summary.counters.append(f"{pname} / block {label}")
    if not any_bytes:
        summary.notes.append("no memcpy/memset bytes in the blocks: the bandwidth counter is left out")
    summary.added_events = len(out)
    return out, summary


# ---- the file ------------------------------------------------------------------------------------


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
    summary.original_events = len(raw_events)
    enc = msgspec.json.Encoder()
    events_json = b"[\n" + b",\n".join([*(bytes(r) for r in raw_events), *(enc.encode(e) for e in new)]) + b"\n]"
    if array_form:
        body = events_json
    else:
        out_top: dict[str, Any] = {k: (msgspec.Raw(events_json) if k == "traceEvents" else v) for k, v in top.items()}
        out_top["traceparseAnnotate"] = {
            "version": __version__,
            "source": src.name,
            "original_events": summary.original_events,
            "added_events": summary.added_events,
            "tracks": summary.tracks,
            "counters": summary.counters,
            "notes": summary.notes,
        }
        body = enc.encode(out_top)
    if dst.name.endswith(".gz"):
        body = gzip.compress(body, compresslevel=6, mtime=0)
    write_bytes_atomic(dst, body)
    return summary
