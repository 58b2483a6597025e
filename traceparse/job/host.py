"""A CPU-only rank (gloo): which collectives ran, for how long, and which module issued each.

On the CPU there are no communication kernels. The rank's main thread issues each collective (a
`c10d::<op>` op, inside the scope of the module that called it: a row-parallel Linear's
all-reduce under `….o_proj (Linear)`); gloo runs it on one of its own threads (a
`gloo:<collective>` span: the transfer, waiting for the peers included); the main thread waits
for the result — inside the issuing module for a synchronous call, later for an async one
(DDP's gradient buckets). So, for a CPU-only trace:

- communication is the gloo threads' collective spans, as NCCL kernels are on a GPU;
- each span is matched to the op that issued it: gloo runs its queue in order, so the k-th
  collective to start is the k-th issued — a span takes the earliest unmatched issuing op that
  started before it (none: an op issued before the trace began, left unattributed);
- its module is the issuing op's (forward: the innermost module scope; backward: the forward
  module differentiated there, as analyze maps every backward op), its block that module's;
- compute is the main thread's operator self time (aten ops; not scope self time, which is where
  a synchronous wait sits, and not the c10d ops); exposed communication is
  |comm ∪ compute| − |compute| per step, as on a GPU;
- message sizes, and so bandwidths, are unknown: gloo's spans are annotations and c10d ops
  type their tensors only as "TensorList", and the loader keeps shape arguments only for the ops
  analyze's FLOP and byte formulas read; the group size comes from `distributedInfo` when the job
  has one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.index import step_of
from traceparse.job.summary import BlockTime, CollectiveRow, Split, issuer_rows
from traceparse.load import CPU_OP
from traceparse.rates import union_us

if TYPE_CHECKING:
    from traceparse.api import Analysis

_RUN_PREFIX = "gloo:"  # gloo's span of one collective, on its worker thread
_ISSUE_PREFIX = "c10d::"  # the backend op that queues it, on the issuing thread


@dataclass(frozen=True)
class HostRuns:
    """A CPU-only rank's collective spans (gloo threads) and what issued them; arrays per span."""

    name: np.ndarray  # object: "gloo:all_reduce", …
    start: np.ndarray
    dur: np.ndarray
    step: np.ndarray  # -1 outside steps
    issue: np.ndarray  # forest position of the issuing op, -1 unmatched
    call: np.ndarray  # module call of the issuing op, -1 none
    phase: np.ndarray  # the issuing op's phase (forward when unmatched)
    collective: np.ndarray  # object: the issuing op's collective ("allreduce", "reduce_scatter_base"), else the span's
    group: int | None  # ranks per collective, when the job has one group size


def main_thread(analysis: Analysis) -> tuple[int, int]:
    """(pid, tid) of the thread that ran the steps: the root module call's, else the busiest."""
    attr = analysis.attribution
    ev, forest = attr.index.events, attr.index.forest
    if len(attr.calls):
        row = forest.rows[attr.calls.pos[np.argmin(attr.calls.depth)]]
    else:
        rows = forest.rows
        pairs = Counter(zip(ev.pid[rows].tolist(), ev.tid[rows].tolist(), strict=True))
        return pairs.most_common(1)[0][0] if pairs else (-1, -1)
    return int(ev.pid[row]), int(ev.tid[row])


def host_runs(analysis: Analysis) -> HostRuns:
    attr = analysis.attribution
    ev, forest = attr.index.events, attr.index.forest
    names = ev.names
    pid, tid = main_thread(analysis)
    rows = forest.rows
    on_main = (ev.pid[rows] == pid) & (ev.tid[rows] == tid)
    name_ids = ev.name[rows]
    is_run_name = np.array([n.startswith(_RUN_PREFIX) for n in names] + [False])
    is_issue_name = np.array([n.startswith(_ISSUE_PREFIX) for n in names] + [False])
    # Outermost gloo spans on the other threads; innermost c10d ops on the main thread (one per
    # queued collective: the `_c10d_functional::` wrappers issue through the `c10d::` op inside;
    # FSDP's `fsdp::all_gather_copy_in` is a copy, not a collective).
    has_parent = forest.parent >= 0
    run = ~on_main & is_run_name[name_ids]
    run_under_run = np.zeros(len(forest), bool)
    run_under_run[has_parent] = run[forest.parent[has_parent]]
    run &= ~run_under_run
    issue = on_main & is_issue_name[name_ids] & (ev.kind[rows] == CPU_OP)
    issue_parent = np.zeros(len(forest), bool)
    issue_parent[forest.parent[np.flatnonzero(issue & has_parent)]] = True
    issue &= ~issue_parent

    run_pos = np.flatnonzero(run)
    run_pos = run_pos[np.argsort(forest.start[run_pos], kind="stable")]
    issue_pos = np.flatnonzero(issue)
    issue_pos = issue_pos[np.argsort(forest.start[issue_pos], kind="stable")]
    matched = _fifo(forest.start[issue_pos], forest.start[run_pos])
    issuer = np.where(matched >= 0, issue_pos[np.maximum(matched, 0)], -1)
    pad = np.append(np.where(attr.nearest_call >= 0, attr.nearest_call, attr.backward_call), -1)
    group = _group_size(analysis.trace.distributed_info)
    return HostRuns(
        name=np.array([names[i] for i in ev.name[rows[run_pos]]], dtype=object),
        start=forest.start[run_pos],
        dur=np.maximum(ev.dur[rows[run_pos]], 0.0),  # recorded: end - start at ~5e12 µs loses digits
        step=step_of(forest.start[run_pos], attr.index.steps),
        issue=issuer,
        call=pad[issuer],
        phase=np.append(attr.phase_of_pos, 0)[issuer],
        collective=np.array(
            [
                _collective(names[ev.name[rows[i]]] if i >= 0 else names[ev.name[rows[r]]])
                for i, r in zip(issuer.tolist(), run_pos.tolist(), strict=True)
            ],
            dtype=object,
        ),
        group=group,
    )


def _fifo(issue_start: np.ndarray, run_start: np.ndarray) -> np.ndarray:
    """Per run (by start): the index of its issuing op, in queue order; -1 when none started before it."""
    out = np.full(run_start.size, -1, np.int64)
    j = 0
    for k, s in enumerate(run_start.tolist()):
        if j < issue_start.size and issue_start[j] <= s:
            out[k] = j
            j += 1
    return out


def _collective(op: str) -> str:
    """ "c10d::_reduce_scatter_base_" → "reduce_scatter_base"; "gloo:all_reduce" → "all_reduce"."""
    return op.split("::")[-1].removeprefix(_RUN_PREFIX).strip("_")


def _group_size(info: dict[str, Any]) -> int | None:
    sizes = {pg.get("pg_size") for pg in info.get("pg_config") or [] if isinstance(pg, dict)}
    size = sizes.pop() if len(sizes) == 1 else info.get("world_size")
    return size if isinstance(size, int) and size > 0 else None


def host_split(analysis: Analysis, n: int) -> Split:
    """The job summary's compute/communication figures for a CPU-only rank."""
    attr, report = analysis.attribution, analysis.report
    runs = host_runs(analysis)
    in_steps = runs.step >= 0
    comm_us = float(runs.dur[in_steps].sum())
    compute = _compute_items(analysis)
    exposed = 0.0
    items = attr.items
    for s in range(n):
        mine = compute & (items.step == s)
        cs, ce = items.start[mine], items.end[mine]
        rs = runs.step == s
        both = union_us(np.concatenate([cs, runs.start[rs]]), np.concatenate([ce, runs.start[rs] + runs.dur[rs]]))
        # At most the step's communication: the union works on rounded positions, not durations.
        exposed += min(both - union_us(cs, ce), float(runs.dur[rs].sum()))
    blocks: tuple[BlockTime, ...] = ()
    if report.blocks:
        from traceparse.blocks import block_of_calls, find_blocks

        found = find_blocks(attr.calls, None, attr.inclusive_us())
        block_of = np.append(block_of_calls(attr.calls, found.index_of_call), -1)
        run_block = block_of[runs.call]
        per = {int(b): float(runs.dur[in_steps & (run_block == b)].sum()) for b in np.unique(run_block[in_steps])}
        blocks = tuple(BlockTime(b.index, b.kind, b.gpu_ms, per.get(b.index, 0.0) / 1e3 / n) for b in report.blocks)
    return Split(
        compute_ms=float(items.dur[compute & (items.step >= 0)].sum()) / 1e3 / n,
        comm_ms=comm_us / 1e3 / n,
        exposed_comm_ms=exposed / 1e3 / n,
        blocks=blocks,
        collectives=_collectives(runs, n),
        issuers=issuer_rows(
            attr,
            runs.call[in_steps],
            runs.phase[in_steps],
            runs.collective[in_steps].tolist(),
            runs.dur[in_steps],
            runs.issue[in_steps],
            n,
        ),
    )


def _compute_items(analysis: Analysis) -> np.ndarray:
    """Items that are the main thread's operator work: CPU ops, not module scopes, not c10d."""
    attr = analysis.attribution
    ev, forest, items = attr.index.events, attr.index.forest, attr.items
    pid, tid = main_thread(analysis)
    rows = items.event_row
    is_scope = np.zeros(len(forest) + 1, bool)
    is_scope[attr.calls.pos] = True
    c10d = np.array(["c10d" in n or n.startswith(_RUN_PREFIX) for n in ev.names] + [False])
    return (
        (ev.pid[rows] == pid)
        & (ev.tid[rows] == tid)
        & (ev.kind[rows] == CPU_OP)
        & ~is_scope[np.where(items.anchor >= 0, items.anchor, -1)]
        & ~c10d[ev.name[rows]]
    )


def _collectives(runs: HostRuns, n: int) -> tuple[CollectiveRow, ...]:
    out = []
    for key in sorted(set(runs.collective[runs.step >= 0].tolist())):
        mine = (runs.step >= 0) & (runs.collective == key)
        out.append(
            CollectiveRow(
                collective=key,
                calls=int(mine.sum()) / n,
                ms=float(runs.dur[mine].sum()) / 1e3 / n,
                bytes_per_call=None,
                algbw_gbps=None,
                busbw_gbps=None,
                group_size=runs.group,
            )
        )
    out.sort(key=lambda c: -c.ms)
    return tuple(out)
