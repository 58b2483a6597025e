"""Stage 2, index: who contains whom on the CPU, which launch made each GPU item, which step.

Everything here is vectorized over columns. The CPU intervals of each thread (ops, annotations,
Python frames, runtime calls) form a forest; we find each interval's parent without a Python
stack: sort the start and end points, a cumulative sum gives each interval's depth, and the
parent is the last interval that started one level up before it — one `searchsorted` per level.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.ma  # np.unique (numpy 2.3+) imports it on first use: ~10 ms, here while the loader decodes

from traceparse.load import (
    CPU_OP,
    GPU_KINDS,
    PYTHON_FUNCTION,
    RUNTIME,
    USER_ANNOTATION,
    Events,
    of_kinds,
)

CPU_INTERVAL_KINDS = (CPU_OP, USER_ANNOTATION, PYTHON_FUNCTION, RUNTIME)
STEP_KINDS = (CPU_OP, USER_ANNOTATION, PYTHON_FUNCTION)
_STEP_RE = re.compile(r"^ProfilerStep#(\d+)$")


@dataclass(frozen=True)
class Forest:
    """CPU intervals of all threads, sorted by (pid, tid, start, -dur): a nesting forest.

    Positions are a preorder of each thread's tree (a parent before its children), which is
    what lets depth and parents be found by counting and searching instead of a stack walk."""

    rows: np.ndarray  # event row of each interval
    parent: np.ndarray  # position (in this forest) of the parent, -1 for roots
    depth: np.ndarray  # 0 for roots
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self) else -1

    def levels(self) -> list[np.ndarray]:
        """Positions grouped by depth, shallowest first, ascending within a level."""
        return self._levels

    @cached_property
    def _levels(self) -> list[np.ndarray]:  # every propagate() needs them: sort once, not each time
        return positions_by_depth(self.depth)

    @cached_property
    def _level_parents(self) -> list[np.ndarray]:
        """Per level, each member's parent position, with a root's parent as len(self): the pad
        slot propagate() keeps for the fill value."""
        pad = len(self)
        return [np.where(self.parent[lv] >= 0, self.parent[lv], pad) for lv in self.levels()]

    def propagate(self, own: np.ndarray, has_own: np.ndarray, fill: int = -1) -> np.ndarray:
        """For each interval: its own value where has_own, else the value of its nearest ancestor
        (fill where none has one). Top-down, one level at a time: a parent is final before its
        children read it."""
        out = np.empty(len(self) + 1, dtype=own.dtype)
        out[-1] = fill
        for level, parents in zip(self.levels(), self._level_parents, strict=True):
            out[level] = np.where(has_own[level], own[level], out[parents])
        return out[:-1]


def positions_by_depth(depth: np.ndarray) -> list[np.ndarray]:
    """Positions grouped by depth (ascending within each group). A stable argsort of a 16-bit
    copy: numpy radix-sorts small integer types, ~10x faster than sorting int64."""
    if not depth.size:
        return []
    top = int(depth.max())
    order = np.argsort(depth.astype(np.int16) if top < np.iinfo(np.int16).max else depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(top + 2))
    return [order[bounds[d] : bounds[d + 1]] for d in range(top + 1)]


def build_forest(ev: Events) -> Forest:
    rows = np.flatnonzero(of_kinds(ev.kind, CPU_INTERVAL_KINDS))
    if rows.size == 0:
        empty = np.empty(0, np.int64)
        return Forest(empty, empty, empty, np.empty(0), np.empty(0))
    start = ev.ts[rows]
    dur = np.maximum(ev.dur[rows], 0.0)
    # Sort by thread, then start, then longer first (a parent before its children). Thread ids
    # are numbered in (pid, tid) order, so three sort keys do what (pid, tid, start, -dur) did.
    thread = _thread_ids(ev.pid[rows], ev.tid[rows])
    order = lexsort_nearly_sorted((-dur, start, thread))
    rows, start, dur, thread = rows[order], start[order], dur[order], thread[order]
    end = start + dur
    depth = _depths(thread, start, end, dur <= 0.0)
    return Forest(rows=rows, parent=_parents(depth, thread), depth=depth, start=start, end=end)


def _depths(thread: np.ndarray, start: np.ndarray, end: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Intervals open when each one starts (positions sorted by thread, start, -dur).

    Sweep order at one instant: ends of non-empty intervals first (touching intervals are
    siblings), then starts in position order (outer first), then ends of empty intervals (an
    empty interval nested at that instant is open when a later one starts there). So the open
    count at interval i's start is the starts before it in its thread, minus the non-empty
    intervals that ended at or before its start, minus the empty ones that ended strictly
    before. Only the ends need sorting: the starts are already in order."""
    n = start.size
    depth = np.arange(n, dtype=np.int64)
    bounds = np.flatnonzero(np.diff(thread)) + 1
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), n], strict=True):
        s, e, z = start[lo:hi], end[lo:hi], empty[lo:hi]
        # The ends come nearly sorted (ordered by start): timsort ("stable") takes them ~7x faster.
        closed = np.searchsorted(np.sort(e[~z], kind="stable"), s, side="right")
        if z.any():
            closed += np.searchsorted(np.sort(e[z], kind="stable"), s, side="left")
        depth[lo:hi] -= lo + closed
    # Never negative: an interval that closed by i's start began at or before it, and one that
    # began at the same instant but sits after i is no longer than i, so it is still open.
    return depth


def _parents(depth: np.ndarray, thread: np.ndarray) -> np.ndarray:
    """Each interval's parent: the last interval one level up that started before it in the
    same thread (positions are a preorder, so "started before" is "earlier position")."""
    parent = np.full(depth.size, -1, np.int64)
    levels = positions_by_depth(depth)
    for up, members in itertools.pairwise(levels):
        k = np.searchsorted(up, members, side="left") - 1
        ok = k >= 0
        cand = up[np.where(ok, k, 0)]
        ok &= thread[cand] == thread[members]
        parent[members[ok]] = cand[ok]
    return parent


def lexsort_nearly_sorted(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """np.lexsort(keys) (the last key primary), ~10x faster on trace columns. Events come nearly
    in time order within a thread, and a stable sort (timsort) of nearly sorted data is close to
    linear, while lexsort pays a full sort per key. So: sort stably by the last two keys, then
    only the runs that tie on both (few) are ordered by all keys."""
    *_, second, primary = keys
    order = np.argsort(second, kind="stable")
    order = order[np.argsort(primary[order], kind="stable")]
    p, s = primary[order], second[order]
    tie = (p[1:] == p[:-1]) & (s[1:] == s[:-1])
    if tie.any():
        at = np.flatnonzero(np.append(tie, False) | np.insert(tie, 0, False))  # both ends of each tie
        sub = order[at]  # whole tie runs, in run order: sorting them by all keys keeps runs in place
        order[at] = sub[np.lexsort(tuple(k[sub] for k in keys))]
    return order


def _thread_ids(pid: np.ndarray, tid: np.ndarray) -> np.ndarray:
    """Dense id of each (pid, tid) pair, numbered in (pid, tid) order. Three 1-D uniques: a
    2-D `np.unique(axis=0)` sorts rows as bytes and takes seconds on a million events. One
    process (the usual trace) needs only the tids' sort, one thread none."""
    if pid.size and (pid == pid[0]).all():
        if (tid == tid[0]).all():
            return np.zeros(tid.size, np.int64)
        return np.unique(tid, return_inverse=True)[1].reshape(-1)
    _, p = np.unique(pid, return_inverse=True)
    tids, t = np.unique(tid, return_inverse=True)
    _, inverse = np.unique(p.reshape(-1).astype(np.int64) * tids.size + t.reshape(-1), return_inverse=True)
    return inverse.reshape(-1)


@dataclass(frozen=True)
class Step:
    number: int  # N of ProfilerStep#N
    start: float
    end: float

    @property
    def wall_ms(self) -> float:
        return (self.end - self.start) / 1e3


@dataclass(frozen=True)
class GpuItems:
    """Kernels, memcpys and memsets, with their launch and step."""

    rows: np.ndarray  # event rows
    start: np.ndarray
    end: np.ndarray
    launch: np.ndarray  # forest position of the runtime call that launched it, -1 if unknown
    op: np.ndarray  # forest position of the innermost CPU op around the launch, -1 if unknown
    step: np.ndarray  # index into Index.steps, -1 outside every step
    tail: np.ndarray  # bool: an unlaunched item before its step's first launched one (previous step's work)

    def __len__(self) -> int:
        return int(self.rows.shape[0])


@dataclass(frozen=True)
class Index:
    events: Events
    forest: Forest
    gpu: GpuItems
    steps: tuple[Step, ...]
    steps_found: bool  # False: the whole trace is one pseudo-step
    incomplete_steps: int  # ProfilerStep spans dropped for ending after the last event
    position_of_row: np.ndarray  # event row → forest position (-1 if not a CPU interval)
    reference_steps: int = 0  # steps left out for holding a reference pass (capture --cuda-graphs)


def find_steps(ev: Events, forest: Forest) -> tuple[list[Step], int]:
    names = ev.names
    step_name_ids = {i: int(m.group(1)) for i, n in enumerate(names) if (m := _STEP_RE.match(n))}
    if not step_name_ids:
        return [], 0
    # A user_annotation since torch 1.11, an "Operator" before: any CPU-side kind but a runtime call.
    mask = np.isin(ev.name[forest.rows], list(step_name_ids)) & of_kinds(ev.kind[forest.rows], STEP_KINDS)
    pos = np.flatnonzero(mask)
    found = {
        (step_name_ids[int(ev.name[forest.rows[p]])], float(forest.start[p]), float(forest.end[p])) for p in pos
    }  # a set: a producer that writes a step under two categories gives it once
    steps = sorted((Step(*f) for f in found), key=lambda s: s.start)
    # A step that overlaps the next one or is cut off by the end of the trace is incomplete:
    # the profiler stopped mid-step. Keep only steps that closed.
    last_event = float(np.max(ev.ts + ev.dur)) if len(ev) else 0.0
    complete = [s for s in steps if s.end > s.start and s.end <= last_event + 1e-3]
    # When the loop ends inside the schedule's active window (or breaks mid-iteration), stopping
    # the profiler closes the open ProfilerStep: the last step holds part of an iteration, often
    # nothing, and averaging it in would dilute every per-step number. It is dropped when it
    # holds under half the CPU ops of the median step before it.
    if len(complete) >= 2:
        op_ts = np.sort(ev.ts[ev.kind == CPU_OP], kind="stable")  # nearly sorted already: timsort

        def ops_in(s: Step) -> int:
            return int(np.searchsorted(op_ts, s.end, "right") - np.searchsorted(op_ts, s.start, "left"))

        if ops_in(complete[-1]) < 0.5 * float(np.median([ops_in(s) for s in complete[:-1]])):
            complete = complete[:-1]
    return complete, len(steps) - len(complete)


def _link_launches(ev: Events, forest: Forest, gpu_rows: np.ndarray, pos_of_row: np.ndarray) -> np.ndarray:
    """Forest position of each GPU item's launch: by correlation id, else by External id."""
    launch = np.full(gpu_rows.size, -1, np.int64)
    rt_pos = np.flatnonzero(ev.kind[forest.rows] == RUNTIME)
    rt_corr = ev.correlation[forest.rows[rt_pos]]
    ok_rt = rt_corr >= 0
    rt_pos, rt_corr = rt_pos[ok_rt], rt_corr[ok_rt]
    if rt_pos.size:
        order = np.argsort(rt_corr, kind="stable")
        k, hit = match_sorted(rt_corr[order], ev.correlation[gpu_rows])
        launch[hit] = rt_pos[order][k[hit]]
    return launch


def match_sorted(sorted_keys: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each wanted key (ids; negative = none): its index in sorted_keys, and whether it is there."""
    k = np.clip(np.searchsorted(sorted_keys, want), 0, max(sorted_keys.size - 1, 0))
    hit = (want >= 0) & (sorted_keys[k] == want) if sorted_keys.size else np.zeros(want.shape[0], bool)
    return k, hit


def _link_ops_by_external_id(ev: Events, forest: Forest, gpu_rows: np.ndarray) -> np.ndarray:
    """Fallback when no runtime event matches: the CPU op with the kernel's External id."""
    out = np.full(gpu_rows.size, -1, np.int64)
    op_pos = np.flatnonzero(ev.kind[forest.rows] == CPU_OP)
    ext = ev.external_id[forest.rows[op_pos]]
    ok = ext >= 0
    op_pos, ext = op_pos[ok], ext[ok]
    if not op_pos.size:
        return out
    # Several ops can share an External id in some torch versions; keep the innermost (deepest).
    order = np.lexsort((-forest.depth[op_pos], ext))
    op_pos, ext = op_pos[order], ext[order]
    first = np.concatenate([[True], ext[1:] != ext[:-1]])
    op_pos, ext = op_pos[first], ext[first]
    k, hit = match_sorted(ext, ev.external_id[gpu_rows])
    out[hit] = op_pos[k[hit]]
    return out


def build_index(ev: Events) -> Index:
    forest = build_forest(ev)
    pos_of_row = np.full(len(ev), -1, np.int64)
    pos_of_row[forest.rows] = np.arange(len(forest))
    gpu_rows = np.flatnonzero(of_kinds(ev.kind, GPU_KINDS))
    gpu_rows = gpu_rows[np.argsort(ev.ts[gpu_rows], kind="stable")]
    launch = _link_launches(ev, forest, gpu_rows, pos_of_row)

    is_op = ev.kind[forest.rows] == CPU_OP
    # Per-position arrays get one pad entry, read at position -1 ("none"): a GPU-only trace
    # (activities=[CUDA]) has no CPU intervals at all, and index 0 would not exist.
    nearest_op = np.append(forest.propagate(np.arange(len(forest)), is_op), -1)
    op = nearest_op[np.where(launch >= 0, launch, -1)]
    missing = op < 0
    if missing.any():
        op[missing] = _link_ops_by_external_id(ev, forest, gpu_rows[missing])

    steps, incomplete = find_steps(ev, forest)
    steps, reference_steps = _without_reference_passes(ev, forest, steps)
    # A GPU item belongs to the step during which it was launched (backward kernels launched
    # from autograd's thread too); unlaunched items go by their own start.
    start = np.append(forest.start, np.nan)
    when = np.where(launch >= 0, start[np.where(launch >= 0, launch, -1)], ev.ts[gpu_rows])
    when = np.where((launch < 0) & (op >= 0), start[np.where(op >= 0, op, -1)], when)
    step_of_item = step_of(when, steps)
    tail = previous_step_tail(step_of_item, ev.ts[gpu_rows], (launch >= 0) | (op >= 0), len(steps))
    step_of_item = np.where(tail, -1, step_of_item)
    return Index(
        events=ev,
        forest=forest,
        gpu=GpuItems(
            rows=gpu_rows,
            start=ev.ts[gpu_rows],
            end=ev.ts[gpu_rows] + np.maximum(ev.dur[gpu_rows], 0.0),
            launch=launch,
            op=op,
            step=step_of_item,
            tail=tail,
        ),
        steps=tuple(steps),
        steps_found=bool(steps),
        incomplete_steps=incomplete,
        position_of_row=pos_of_row,
        reference_steps=reference_steps,
    )


# `capture --cuda-graphs` runs the captured work once un-graphed, in its own profiler step, for
# matching the replays to modules (traceparse.recover.replay): that step is no step of the run.
REFERENCE_PASS = "traceparse:reference"


def _without_reference_passes(ev: Events, forest: Forest, steps: list[Step]) -> tuple[list[Step], int]:
    ids = [i for i, n in enumerate(ev.names) if n == REFERENCE_PASS]
    if not ids or not steps:
        return steps, 0
    at = forest.start[np.isin(ev.name[forest.rows], ids)]
    keep = [s for s in steps if not ((at >= s.start) & (at < s.end)).any()]
    return keep, len(steps) - len(keep)


def previous_step_tail(step: np.ndarray, start: np.ndarray, linked: np.ndarray, n_steps: int) -> np.ndarray:
    """Per GPU item: is it work of the step before (not in `step`'s totals)?

    An item with no launch event was launched before the profiler recorded CPU events (the
    optimizer of the unprofiled step before the first active one, still running when the first
    ProfilerStep begins), so its start alone would put it in the wrong step. A stream runs its
    work in order, so such an item that starts before the step's first launched item is the
    previous step's tail. Steps without any launched item keep theirs (a GPU-only trace)."""
    if not n_steps or linked.all():
        return np.zeros(step.shape[0], bool)
    in_step = (step >= 0) & linked
    first = np.full(n_steps, np.inf)
    np.minimum.at(first, step[in_step], start[in_step])
    own_first = first[np.where(step >= 0, step, 0)]
    return (step >= 0) & ~linked & (start < own_first)


def step_of(when: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Index of the step whose span holds each time (-1: none); all 0 when there are no steps."""
    if not steps:
        return np.zeros(when.shape[0], np.int64)
    starts = np.array([s.start for s in steps])
    ends = np.array([s.end for s in steps])
    k = np.searchsorted(starts, when, side="right") - 1
    ok = (k >= 0) & (when <= ends[np.clip(k, 0, None)])
    return np.where(ok, k, -1)
