"""Stage 3, attribute: each unit of work → the module call it ran for, its phase and step.

Work items are GPU kernels/memcpys/memsets (their own durations), or — in a CPU-only trace —
the self time of each CPU interval. Each item counts once as *self* time of its innermost module
call and as *inclusive* time of every enclosing call. Backward kernels run under autograd's
node ops with no module scope around them; they are mapped to the module of the forward op
with the same autograd sequence number. The invariant, checked here:

    sum(self time of every call) + unattributed time == total item time   (per phase and step)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from traceparse.index import Index, step_of
from traceparse.load import CPU_OP, USER_ANNOTATION
from traceparse.scopes import (
    BACKWARD,
    FORWARD,
    PHASE_NAMES,
    ScopeNames,
    backward_nodes,
    classify_names,
    phase_markers,
)

ATTRIBUTION_MODES = ("scopes", "with_stack", "operators", "cpu")


def factorize(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """(code of each value, the distinct values in order of first appearance): one dict lookup
    per value, then numpy works on the codes."""
    first: dict[Any, int] = {}
    code = np.fromiter((first.setdefault(v, len(first)) for v in values), np.int64, len(values))
    return code, list(first)


@dataclass(frozen=True)
class ModuleCalls:
    """One row per module call (scope interval); `parent` indexes this table (-1: a root call)."""

    pos: np.ndarray  # forest position of the scope interval
    qual: np.ndarray  # object array of qualified names
    cls: np.ndarray  # object array of class names
    parent: np.ndarray
    depth: np.ndarray  # depth among module calls (root call = 0)
    step: np.ndarray  # step index, -1 outside steps
    start: np.ndarray  # CPU µs
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    @cached_property
    def class_codes(self) -> tuple[np.ndarray, list[str]]:
        """(per call: a code, the distinct class names): per-class work is then done once per
        class, not once per call."""
        code, classes = factorize(self.cls.tolist())
        return code, [str(c) for c in classes]

    def inherit(self, own: np.ndarray, has_own: np.ndarray) -> np.ndarray:
        """Per call: its own value where has_own, else its nearest ancestor's (top-down)."""
        out = own.copy()
        for d in range(1, int(self.depth.max()) + 1 if len(self) else 0):
            at = np.flatnonzero((self.depth == d) & ~has_own & (self.parent >= 0))
            out[at] = out[self.parent[at]]
        return out

    def inclusive(self, own: np.ndarray) -> np.ndarray:
        """Per call: its own value plus its descendants' (time, FLOPs), summed bottom-up."""
        out = own.astype(float).copy()
        for d in range(int(self.depth.max()) if len(self) else -1, 0, -1):
            at = np.flatnonzero((self.depth == d) & (self.parent >= 0))
            np.add.at(out, self.parent[at], out[at])
        return out


@dataclass(frozen=True)
class Items:
    """The units of work that time is measured in, with their attribution."""

    dur: np.ndarray  # µs
    start: np.ndarray
    end: np.ndarray
    anchor: np.ndarray  # forest position the item hangs from (launch, op or itself), -1 if none
    op: np.ndarray  # forest position of the innermost CPU op, -1 if none
    call: np.ndarray  # index into ModuleCalls, -1: unattributed
    phase: np.ndarray  # int8 phase code
    step: np.ndarray  # step index, -1 outside every step
    event_row: np.ndarray  # row in Events

    def __len__(self) -> int:
        return int(self.dur.shape[0])


@dataclass(frozen=True)
class Attribution:
    index: Index
    mode: str  # one of ATTRIBUTION_MODES
    scope_source: str
    calls: ModuleCalls
    items: Items
    nearest_call: np.ndarray  # forest position → call index of the innermost module call (-1)
    backward_call: np.ndarray  # forest position → forward call differentiated there (-1)
    backward_op: np.ndarray  # forest position → forward op differentiated there (-1)
    phase_of_pos: np.ndarray  # forest position → phase
    n_steps: int
    # Set by traceparse.recover: forest position → the call recovered for it (compiled-region
    # provenance), -1 elsewhere; and what recovery did (a traceparse.recover.Recovery).
    recovered_call: np.ndarray | None = None
    recovery: Any = None

    def self_us(self, phase: int | None = None, step: int | None = None) -> np.ndarray:
        """Self time per call (µs), summed over items of the phase/step (None: all)."""
        keep = self._select(phase, step) & (self.items.call >= 0)
        return np.bincount(self.items.call[keep], weights=self.items.dur[keep], minlength=len(self.calls))

    def inclusive_us(self, phase: int | None = None, step: int | None = None) -> np.ndarray:
        return self.calls.inclusive(self.self_us(phase, step))

    def call_of_pos(self, pos: np.ndarray) -> np.ndarray:
        """Module call for forest positions: the recovered one (a compiled region's module), else
        the enclosing scope, else the differentiated one."""
        call = self.nearest_call[pos]
        call = np.where(call >= 0, call, self.backward_call[pos])
        if self.recovered_call is not None:
            rec = self.recovered_call[pos]
            call = np.where(rec >= 0, rec, call)
        return call

    def step_of_time(self, when: np.ndarray) -> np.ndarray:
        return step_of(when, self.index.steps)

    def unattributed_us(self, phase: int | None = None, step: int | None = None) -> float:
        keep = self._select(phase, step) & (self.items.call < 0)
        return float(self.items.dur[keep].sum())

    def total_us(self, phase: int | None = None, step: int | None = None) -> float:
        return float(self.items.dur[self._select(phase, step)].sum())

    def _select(self, phase: int | None, step: int | None) -> np.ndarray:
        keep = np.ones(len(self.items), bool)
        if phase is not None:
            keep &= self.items.phase == phase
        if step is not None:
            keep &= self.items.step == step
        return keep

    def self_check(self) -> None:
        """The conservation invariant; raises AssertionError (a bug) if time leaked or doubled."""
        for phase in range(len(PHASE_NAMES)):
            total = self.total_us(phase)
            parts = float(self.self_us(phase).sum()) + self.unattributed_us(phase)
            assert abs(parts - total) <= 1e-6 * max(1.0, abs(total)), (
                f"attribution leak in {PHASE_NAMES[phase]}: self+unattributed={parts} != total={total}"
            )
        roots = np.flatnonzero(self.calls.parent < 0)
        incl = self.inclusive_us()
        attributed = float(self.self_us().sum())
        assert abs(float(incl[roots].sum()) - attributed) <= 1e-6 * max(1.0, attributed), (
            "inclusive time of root calls differs from the sum of self times"
        )


def attribute(index: Index) -> Attribution:
    ev, forest = index.events, index.forest
    names = classify_names(ev)
    name_of_pos = ev.name[forest.rows]
    kind_of_pos = ev.kind[forest.rows]
    is_scope = names.is_scope[name_of_pos]
    calls, call_of_scope_pos = _module_calls(index, names, is_scope)
    nearest_call = forest.propagate(call_of_scope_pos, is_scope)

    markers = phase_markers(ev.names)[name_of_pos]
    phase_of_pos = forest.propagate(markers, markers >= 0, fill=FORWARD).astype(np.int8)
    # Backward nodes carry the forward module they differentiate (by autograd sequence number).
    bwd_call, bwd_fwd_phase, bwd_fwd_op = _backward_links(index, nearest_call, phase_of_pos, name_of_pos)

    cpu_only = len(index.gpu) == 0
    if cpu_only:
        items = _cpu_items(index, kind_of_pos)
    else:
        g = index.gpu
        anchor = np.where(g.launch >= 0, g.launch, g.op)
        items = Items(
            # The recorded durations, not end - start: at ~5e12 µs timestamps that subtraction
            # loses the last digits and the per-step sums drift.
            dur=np.maximum(index.events.dur[g.rows], 0.0),
            start=g.start,
            end=g.end,
            anchor=anchor,
            op=g.op,
            call=np.full(len(g), -1, np.int64),
            phase=np.full(len(g), FORWARD, np.int8),
            step=g.step,
            event_row=g.rows,
        )
    has = items.anchor >= 0
    safe = np.where(has, items.anchor, -1)

    def at(per_pos: np.ndarray) -> np.ndarray:
        """Per-position values at each item's anchor; -1 reads a pad (a GPU-only trace has no positions)."""
        return np.append(per_pos, -1).astype(per_pos.dtype)[safe]

    call = np.where(has, at(nearest_call), -1)
    phase = np.where(has, at(phase_of_pos), FORWARD).astype(np.int8)
    from_bwd = has & (call < 0) & (at(bwd_call) >= 0)
    call = np.where(from_bwd, at(bwd_call), call)
    # Backward of work done in the loss (or optimizer) belongs to that section, not to "backward".
    fwd_phase = np.where(has, at(bwd_fwd_phase), -1)
    moved = (phase == BACKWARD) & (fwd_phase >= 0) & (fwd_phase != FORWARD) & (fwd_phase != BACKWARD)
    phase = np.where(moved, fwd_phase, phase).astype(np.int8)
    items = Items(
        dur=items.dur,
        start=items.start,
        end=items.end,
        anchor=items.anchor,
        op=items.op,
        call=call,
        phase=phase,
        step=items.step,
        event_row=items.event_row,
    )
    if names.source == "scopes":
        mode = "scopes"
    elif names.source == "with_stack":
        mode = "with_stack"
    else:
        mode = "operators"
    if cpu_only:
        mode = "cpu"
    result = Attribution(
        index=index,
        mode=mode,
        scope_source=names.source,
        calls=calls,
        items=items,
        nearest_call=nearest_call,
        backward_call=bwd_call,
        backward_op=bwd_fwd_op,
        phase_of_pos=phase_of_pos,
        n_steps=max(1, len(index.steps)),
    )
    result.self_check()
    return result


def _module_calls(index: Index, names: ScopeNames, is_scope: np.ndarray) -> tuple[ModuleCalls, np.ndarray]:
    forest, ev = index.forest, index.events
    scope_pos = np.flatnonzero(is_scope)
    call_of_scope_pos = np.full(len(forest), -1, np.int64)
    call_of_scope_pos[scope_pos] = np.arange(scope_pos.size)
    nearest = forest.propagate(call_of_scope_pos, is_scope)
    par_pos = forest.parent[scope_pos]
    parent = np.where(par_pos >= 0, nearest[np.where(par_pos >= 0, par_pos, 0)], -1)
    depth = np.zeros(scope_pos.size, np.int64)
    # Parents sit at lower forest depth than children, so settling depth level by level works.
    if scope_pos.size:
        levels = forest.depth[scope_pos]
        for lv in np.unique(levels):
            at = np.flatnonzero(levels == lv)
            p = parent[at]
            depth[at] = np.where(p >= 0, depth[np.where(p >= 0, p, 0)] + 1, 0)
    name_ids = ev.name[forest.rows[scope_pos]]
    qual = np.array([names.qual[i] for i in name_ids], dtype=object)
    cls = np.array([names.cls[i] for i in name_ids], dtype=object)
    starts = forest.start[scope_pos]
    step = step_of(starts, index.steps)
    return (
        ModuleCalls(scope_pos, qual, cls, parent, depth, step, starts, forest.end[scope_pos]),
        call_of_scope_pos,
    )


def _backward_links(
    index: Index, nearest_call: np.ndarray, phase_of_pos: np.ndarray, name_of_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forest position → (forward module call differentiated there, that forward op's phase, the op).

    -1 where the position is not under a backward node with a known forward op. The phase tells
    the loss's own backward (log_softmax, nll_loss) apart from the model's.
    """
    ev, forest = index.events, index.forest
    seq = ev.seq[forest.rows]
    is_node = backward_nodes(ev.names)[name_of_pos] & (seq >= 0)
    fwd = (ev.kind[forest.rows] == CPU_OP) & (seq >= 0) & (phase_of_pos != BACKWARD)
    out = np.full(len(forest), -1, np.int64)
    if not is_node.any() or not fwd.any():
        return out, out.copy(), out.copy()
    node_pos = np.flatnonzero(is_node)
    fwd_pos, k, hit = _creating_ops(np.flatnonzero(fwd), node_pos, seq, forest.start)
    own_call = np.full(len(forest), -1, np.int64)
    own_phase = np.full(len(forest), -1, np.int64)
    own_call[node_pos[hit]] = nearest_call[fwd_pos[k[hit]]]
    own_phase[node_pos[hit]] = phase_of_pos[fwd_pos[k[hit]]]
    own_op = np.full(len(forest), -1, np.int64)
    own_op[node_pos[hit]] = fwd_pos[k[hit]]
    linked = own_phase >= 0
    return forest.propagate(own_call, linked), forest.propagate(own_phase, linked), forest.propagate(own_op, linked)


def _creating_ops(
    cand: np.ndarray, nodes: np.ndarray, seq: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each backward node, the forward op that created it: (candidates, index of each node's
    op in them, whether it has one).

    Every op records the *next* autograd sequence number when it starts, and the counter moves on
    only when a node is created, so ops that create no node (`zero_` in zero_grad, `item`, the
    optimizer's ops) share a number with the node the next creating op makes. That op is the
    latest to start, before the node runs, among the ops with its number."""
    n_c = cand.size
    key_seq = np.concatenate([seq[cand], seq[nodes]])
    key_start = np.concatenate([start[cand], start[nodes]])
    is_node = np.concatenate([np.zeros(n_c, bool), np.ones(nodes.size, bool)])
    order = np.lexsort((is_node, key_start, key_seq))  # by number, then time; ops before nodes on ties
    last_op = np.maximum.accumulate(np.where(is_node[order], -1, np.arange(order.size)))
    at_node = np.flatnonzero(is_node[order])
    prev = last_op[at_node]
    ok = prev >= 0
    ok[ok] = key_seq[order][prev[ok]] == key_seq[order][at_node[ok]]
    k = np.zeros(nodes.size, np.int64)
    k[order[at_node] - n_c] = np.where(ok, order[np.where(ok, prev, 0)], 0)
    hit = np.zeros(nodes.size, bool)
    hit[order[at_node] - n_c] = ok
    return cand, k, hit


def _cpu_items(index: Index, kind_of_pos: np.ndarray) -> Items:
    """CPU-only trace: the self time (duration minus children) of every CPU interval."""
    forest = index.forest
    dur = forest.end - forest.start
    child_sum = np.zeros(len(forest))
    has_parent = forest.parent >= 0
    np.add.at(child_sum, forest.parent[has_parent], dur[has_parent])
    self_dur = np.maximum(dur - child_sum, 0.0)
    step_names = {i for i, n in enumerate(index.events.names) if n.startswith("ProfilerStep#")}
    is_step = (kind_of_pos == USER_ANNOTATION) & np.isin(index.events.name[forest.rows], list(step_names))
    keep = np.flatnonzero((self_dur > 0) & ~is_step)
    starts = forest.start[keep]
    step = step_of(starts, index.steps)
    is_op = kind_of_pos == CPU_OP
    nearest_op = forest.propagate(np.arange(len(forest)), is_op)
    return Items(
        dur=self_dur[keep],
        start=starts,
        end=starts + self_dur[keep],
        anchor=keep,
        op=nearest_op[keep],
        call=np.full(keep.size, -1, np.int64),
        phase=np.zeros(keep.size, np.int8),
        step=step,
        event_row=forest.rows[keep],
    )
