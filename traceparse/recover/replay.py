"""Kernels replayed from a CUDA graph → the modules of the same kernels in a reference pass.

A replay (`cudaGraphLaunch`) runs its kernels with no CPU op or scope around them. `capture
--cuda-graphs` records, in the same trace, one un-graphed run of the captured callable inside a
"traceparse:reference" annotation (a profiler step of its own that analyze leaves out). The
replay runs the same kernels in the same order, so the two name sequences are aligned (longest
matching blocks, as difflib does) and each matched replay kernel takes the module its reference
twin ran under. What does not align stays with the eager call around the launch, and the match
rate is reported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from traceparse.attribute import Attribution, ModuleCalls

GRAPH_LAUNCHES = frozenset({"cudaGraphLaunch", "cudaGraphLaunch_v10000", "hipGraphLaunch"})


@dataclass(frozen=True)
class ReplayMatch:
    """Per GPU item: the reference item it matches (-1: none, or not a replayed item)."""

    twin: np.ndarray
    replayed: np.ndarray  # bool per item: launched by a graph launch, in a step
    reference_items: int


def match_replays(attr: Attribution, reference_scope: str) -> ReplayMatch | None:
    ev, forest, items = attr.index.events, attr.index.forest, attr.items
    ref_ids = [i for i, n in enumerate(ev.names) if n == reference_scope]
    launch_ids = [i for i, n in enumerate(ev.names) if n in GRAPH_LAUNCHES]
    if not ref_ids or not launch_ids or not len(forest):
        return None
    name_of_pos = ev.name[forest.rows]
    is_ref = np.isin(name_of_pos, ref_ids)
    under_ref = forest.propagate(is_ref.astype(np.int8), is_ref, fill=0).astype(bool)
    anchor = items.anchor
    has = anchor >= 0
    safe = np.where(has, anchor, 0)
    in_ref = has & under_ref[safe]
    ref_items = np.flatnonzero(in_ref)
    ref_items = ref_items[np.argsort(items.start[ref_items], kind="stable")]
    if not ref_items.size:
        return None
    ref_names = ev.name[items.event_row[ref_items]].tolist()
    launched = has & np.isin(name_of_pos[safe], launch_ids) & (items.step >= 0)
    twin = np.full(len(items), -1, np.int64)
    rep = np.flatnonzero(launched)
    rep = rep[np.lexsort((items.start[rep], anchor[rep]))]
    bounds = np.flatnonzero(np.diff(anchor[rep])) + 1
    cache: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for group in np.split(rep, bounds) if rep.size else []:
        names = tuple(ev.name[items.event_row[group]].tolist())
        if names not in cache:
            sm = difflib.SequenceMatcher(None, ref_names, list(names), autojunk=False)
            cache[names] = [(b.a + k, b.b + k) for b in sm.get_matching_blocks() for k in range(b.size)]
        for a, b in cache[names]:
            twin[group[b]] = ref_items[a]
    return ReplayMatch(twin, launched, int(ref_items.size))


def chain_to_root(calls: ModuleCalls, call: int) -> tuple[tuple[str, str], ...]:
    """(qual, class) of the call and its ancestors below the root call, outermost first."""
    out = []
    while call >= 0 and calls.parent[call] >= 0:
        out.append((str(calls.qual[call]), str(calls.cls[call])))
        call = int(calls.parent[call])
    return tuple(reversed(out))
