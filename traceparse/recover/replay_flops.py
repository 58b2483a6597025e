"""FLOPs of replayed graph kernels: those of the ops their reference twins ran under.

A replay runs no op, so shapes say nothing of its FLOPs; but each of its kernels has a twin in
the reference pass, launched by an op whose FLOPs are counted. Each counted reference op is
counted again once per replay in which the first of its kernels found its twin, under the
module call that replayed kernel was given, at the CPU time of the graph launch (so per-token
decode FLOPs fall in the right token).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from traceparse.attribute import Attribution
from traceparse.flops.count import FlopTable


def add_replay_flops(table: FlopTable, attr: Attribution) -> FlopTable:
    rec = attr.recovery
    if rec is None or rec.twin is None or table.pos is None or not (rec.twin >= 0).any():
        return table
    items, forest = attr.items, attr.index.forest
    own = np.full(len(forest), -1, np.int64)
    counted = np.flatnonzero(table.pos >= 0)
    own[table.pos[counted]] = counted
    row_at = forest.propagate(own, own >= 0)
    has = items.anchor >= 0
    row_of_item = np.where(has, row_at[np.where(has, items.anchor, 0)], -1)
    # Per counted row: its first kernel (by GPU start) among the reference items it covers.
    twins = rec.twin
    ref = np.unique(twins[twins >= 0])
    ref = ref[row_of_item[ref] >= 0]
    first_of_row: dict[int, int] = {}
    for r_item in ref[np.argsort(items.start[ref], kind="stable")].tolist():
        first_of_row.setdefault(int(row_of_item[r_item]), r_item)
    first_items = np.fromiter(first_of_row.values(), np.int64, len(first_of_row))
    is_first = np.zeros(len(items), bool)
    is_first[first_items] = True
    row_of_first = np.full(len(items), -1, np.int64)
    row_of_first[first_items] = np.fromiter(first_of_row.keys(), np.int64, len(first_of_row))

    rep = np.flatnonzero((twins >= 0) & (items.step >= 0))
    emit = rep[is_first[twins[rep]]]
    rows = row_of_first[twins[emit]]
    covered, tensor = table.item_covered.copy(), table.item_tensor.copy()
    covered[rep] = covered[twins[rep]]
    tensor[rep] = tensor[twins[rep]]
    if not emit.size:
        return dataclasses.replace(table, item_covered=covered, item_tensor=tensor)
    launch_start = forest.start[items.anchor[emit]]
    return dataclasses.replace(
        table,
        flops=np.concatenate([table.flops, table.flops[rows]]),
        kind=np.concatenate([table.kind, table.kind[rows]]),
        call=np.concatenate([table.call, items.call[emit]]),
        phase=np.concatenate([table.phase, items.phase[emit]]).astype(np.int8),
        step=np.concatenate([table.step, items.step[emit]]),
        start=np.concatenate([table.start, launch_start]),
        analytic=np.concatenate([table.analytic, np.zeros(emit.size, bool)]),
        op_name=np.concatenate([table.op_name, table.op_name[rows]]),
        item_covered=covered,
        item_tensor=tensor,
        pos=np.concatenate([table.pos, np.full(emit.size, -1, np.int64)]),
    )
