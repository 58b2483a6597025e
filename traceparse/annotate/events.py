"""The events appended to the trace: named processes and threads, slices, and counters.

The new events use pids and tids that no original event uses, named by "M" events.

Counters: each counter ("C" event name) carries exactly one series (one arg key) in every one
of its events, emitted in time order. Catapult (chrome://tracing, TensorBoard's Trace tab) takes
a counter's series from its first event only, so a counter whose events alternate series loses
all but the first; and one counter with two series would be drawn stacked, TFLOP/s on top of
GB/s. Perfetto names a counter track "<name> <arg key>", so the counters "block" / "TFLOP/s" and
"block copy" / "GB/s" read "block TFLOP/s" and "block copy GB/s" there.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from traceparse.annotate.lanes import assign_lanes, check_nesting
from traceparse.annotate.slices import Slice, build_slices, us_text

if TYPE_CHECKING:
    from traceparse.api import Analysis

CATEGORY = "traceparse"
FIRST_NEW_ID = 2_000_000_000  # new pids/tids: far from real ids and from Perfetto's interned-string ids
_SORT_BASE = 5_001_000  # after Kineto's GPU processes (5_000_000 + device), before its "Spans"


@dataclass(frozen=True)
class CounterSpec:
    name: str  # the "C" events' name: Catapult's counter track
    series: str  # their one arg key: Catapult's series; Perfetto's track is "<name> <series>"
    value: Callable[[Slice], float | None]
    meaning: str  # what the value divides by what, written into the file's traceparseAnnotate block

    @property
    def label(self) -> str:
        return f"{self.name} {self.series}"


TFLOPS = CounterSpec(
    "block",
    "TFLOP/s",
    lambda s: s.args.get("tflops"),
    "while a block call runs: its tensor FLOPs / its GPU time (kernels + memcpy + memset, all streams) "
    "in that phase, the report's per-block TFLOP/s; 0 between blocks",
)
COPY = CounterSpec(
    "block copy",
    "GB/s",
    lambda s: s.args["copy_bytes"] / (s.args["inclusive_ms"] * 1e6 or 1.0),
    "while a block call runs: bytes of its memcpy + memset operations on this stream / its GPU time "
    "(kernels + memcpy + memset) on this stream; copies only, not the kernels' DRAM traffic; 0 between blocks",
)
COUNTERS = (TFLOPS, COPY)

# What the slice args sum, written into the file next to the tracks (the README has the same).
ARG_MEANINGS = {
    "self_ms": "GPU time (kernels + memcpy + memset) of the call's own operations, this stream",
    "inclusive_ms": "GPU time (kernels + memcpy + memset) of the call and its sub-modules, this stream",
    "kernels_only_ms": "the kernels in inclusive_ms (what TensorBoard's overview calls Kernel)",
    "memcpy_ms": "the memcpys in inclusive_ms",
    "memset_ms": "the memsets in inclusive_ms",
    "kernels": "number of kernels, memcpys and memsets in inclusive_ms",
    "span_ms": "last end - first start of those operations",
}


@dataclass(frozen=True)
class Summary:
    original_events: int = 0
    added_events: int = 0
    slices: int = 0
    tracks: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def with_original(self, n: int) -> Summary:
        return dataclasses.replace(self, original_events=n)

    def __str__(self) -> str:
        return (
            f"{self.original_events} original events kept, {self.added_events} added "
            f"({self.slices} slices on {len(self.tracks)} tracks; counters: {', '.join(self.counters) or 'none'})"
        )


def step_points(slices: list[Slice], value_of: Callable[[Slice], float | None]) -> list[tuple[int, float]]:
    """A step function from slices: each slice's value while it runs (the latest started wins), else 0.

    Points are in strictly increasing time, one per change of value.
    """
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


def _counters_wanted(block_slices: list[Slice], notes: list[str]) -> list[CounterSpec]:
    wanted = []
    # Without FLOPs every value would be 0, which reads as "idle", not "unknown".
    if any(s.args.get("flops") is not None for s in block_slices):
        wanted.append(TFLOPS)
    elif block_slices:
        notes.append("no FLOPs for the blocks: the TFLOP/s counter is left out")
    if any(s.args["copy_bytes"] > 0 for s in block_slices):
        wanted.append(COPY)
    else:
        notes.append("no memcpy/memset bytes in the blocks: the bandwidth counter is left out")
    return wanted


def annotation_events(analysis: Analysis, taken_ids: set[int]) -> tuple[list[dict[str, Any]], Summary]:
    """The events to append: metadata, slices and counters, all on fresh pids/tids."""
    groups, modules, block_slices, notes = build_slices(analysis)
    new_id = _IdPool(set(taken_ids))
    out: list[dict[str, Any]] = []
    tracks: list[str] = []
    counters: list[str] = []
    n_slices = 0
    by_group_mod: dict[int, list[Slice]] = defaultdict(list)
    by_group_blk: dict[int, list[Slice]] = defaultdict(list)
    for s in modules:
        by_group_mod[s.key[0]].append(s)
    for s in block_slices:
        by_group_blk[s.key[0]].append(s)
    wanted = _counters_wanted(block_slices, notes)
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
                tracks.append(f"{pname} / {tname}")
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
                    n_slices += 1
        blocks_here = by_group_blk[g]
        for spec in wanted if blocks_here else ():
            for t, v in step_points(blocks_here, spec.value):
                out.append(
                    {
                        "ph": "C",
                        "cat": CATEGORY,
                        "name": spec.name,
                        "pid": pid,
                        "tid": first_tid,
                        "ts": us_text(t),
                        "args": {spec.series: v},
                    }
                )
            counters.append(f"{pname} / {spec.label}")
    summary = Summary(
        added_events=len(out), slices=n_slices, tracks=tuple(tracks), counters=tuple(counters), notes=tuple(notes)
    )
    return out, summary
