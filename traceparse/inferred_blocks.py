"""Blocks of a model that left no module events, inferred from its kernel sequence.

A transformer runs the same layer N times, so its kernel sequence repeats with a period of one
layer's kernels. That holds for eager models profiled without `with_stack` and for compiled ones
(`torch.compile` leaves only "Torch-Compiled Region" and `triton_*` kernels; Inductor numbers its
kernels per graph — `triton_red_fused_..._6`, `_8`, … for the same norm in different layers — so
Triton kernels are compared by their kind alone). The longest run in which every kernel equals
the one a period later gives the period and the number of blocks; each block is a period's worth
of kernels. It is an inference, and said so: a block's boundary may sit anywhere within a layer
(from one layer's norm to the next's, say), and a layer whose kernels differ breaks the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from traceparse.attribute import Attribution
from traceparse.flops.count import KINDS, FlopTable
from traceparse.flops.formulas import TENSOR_KINDS
from traceparse.load import KERNEL
from traceparse.rates import flops_known, rows_by
from traceparse.report import BlockRow
from traceparse.scopes import FORWARD

_TRITON_KIND = re.compile(r"^(triton_(?:poi|red|per|tem|for))_")
MIN_PERIOD = 4  # kernels per block at least: shorter repeats are runs inside a layer
MIN_BLOCKS = 2
_WORK = 5e7  # element comparisons the period search may spend per step
MIN_COVER = 0.5  # share of a step's kernels the repeated run must cover
# Share of a step's kernels that are of kinds no block runs, under which one period is taken
# for a whole iteration (an LLM's embedding, head and sampling are ~4-10 % of a decode's kernels).
ITERATION_OUTSIDE = 0.02
MAX_ITERATIONS = 3  # a step (or a trace without steps) that repeats more often repeats layers


@dataclass(frozen=True)
class InferredBlocks:
    block_of_item: np.ndarray  # per attribution item: block index, -1 outside the repeated run
    period: int  # kernels per block
    count: int  # blocks per step
    first_kernel: int  # position in the step's kernel sequence where block 0 starts


def infer_blocks(attr: Attribution) -> InferredBlocks | None:
    """Blocks from the forward kernel sequence of each step; None when nothing repeats."""
    items, ev = attr.items, attr.index.events
    if not len(items) or (attr.items.phase != FORWARD).any():
        return None
    kernel = (ev.kind[items.event_row] == KERNEL) & (items.step >= 0)
    tokens = _tokens(ev.names, ev.name[items.event_row])
    block = np.full(len(items), -1, np.int64)
    found: tuple[int, int, int] | None = None
    for rows in rows_by(np.where(kernel, items.step, -1), attr.n_steps):
        rows = rows[np.argsort(items.start[rows], kind="stable")]
        seq = tokens[rows]
        got = repeated_run(seq, None if found is None else found[1])
        if got is None:
            return None  # every step must repeat alike, or the inference is not trusted
        start, period, count = got
        if period * count < MIN_COVER * seq.size:
            return None  # layers hold most of a model's kernels: a short repeat is something else
        if count <= MAX_ITERATIONS and np.mean(~np.isin(seq, seq[start : start + period])) < ITERATION_OUTSIDE:
            # One period holds (nearly) every kernel the step runs: a whole iteration (the step
            # ran the model several times), not a layer; a layer leaves the embedding, the head
            # and the sampling outside. Layers, if any, repeat inside it.
            inner = repeated_run(seq[start : start + period])
            if inner is None or inner[1] * inner[2] < MIN_COVER * period:
                return None
            for it in range(count):
                first = start + it * period + inner[0]
                block[rows[first : first + inner[1] * inner[2]]] = np.arange(inner[1] * inner[2]) // inner[1]
            got = (start + inner[0], inner[1], inner[2])
        else:
            run = rows[start : start + period * count]
            block[run] = np.arange(run.size) // period
        if found is not None and got[2] != found[2]:
            return None
        found = found or got
    if found is None:
        return None
    return InferredBlocks(block, found[1], found[2], found[0])


def _tokens(names: tuple[str, ...], name_ids: np.ndarray) -> np.ndarray:
    """A code per item: its kernel name, or for a Triton kernel only its kind."""
    used, inverse = np.unique(name_ids, return_inverse=True)
    keys = []
    for i in used.tolist():
        m = _TRITON_KIND.match(names[i])
        keys.append(m.group(1) if m else names[i])
    _, code = np.unique(np.array(keys, dtype=object), return_inverse=True)
    return code.reshape(-1)[inverse.reshape(-1)].astype(np.int64)


def repeated_run(tokens: np.ndarray, period: int | None = None) -> tuple[int, int, int] | None:
    """(start, period, count) of the repeated run covering the most tokens (the shortest period
    on ties: twice a period covers less), or None when no period of ≥ MIN_PERIOD repeats."""
    n = tokens.size
    if n < MIN_PERIOD * MIN_BLOCKS:
        return None
    periods = [period] if period is not None else range(MIN_PERIOD, min(n // MIN_BLOCKS, int(_WORK // n)) + 1)
    best: tuple[int, int, int] | None = None
    best_cover = 0
    for p in periods:
        if p >= n:
            continue
        same = tokens[:-p] == tokens[p:]
        if not same.any():
            continue
        edges = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        j = int(np.argmax(ends - starts))
        count = (int(ends[j] - starts[j]) + p) // p
        if count >= MIN_BLOCKS and count * p > best_cover:
            best, best_cover = (int(starts[j]), p, count), count * p
    return best


def inferred_rows(
    attr: Attribution,
    flops: FlopTable,
    inferred: InferredBlocks,
    uncounted: np.ndarray,
    kernel_us: float,
    peak: float | None,
) -> list[BlockRow]:
    """Block rows of inferred blocks (per step, like every row). A block's FLOPs are those of the
    counted ops launched between its first kernel's launch and the next block's."""
    items, forest, n = attr.items, attr.index.forest, attr.n_steps
    has = items.anchor >= 0
    launched = np.where(has, np.append(forest.start, np.nan)[np.where(has, items.anchor, -1)], np.nan)
    tensor = np.isin(flops.kind, [KINDS.index(k) for k in TENSOR_KINDS])
    flop_block = np.full(flops.flops.size, -1, np.int64)
    placed = np.isfinite(launched) & (inferred.block_of_item >= 0)
    flop_rows = rows_by(np.where(tensor, flops.step, -1), n)
    for s, mine in enumerate(rows_by(np.where(placed, items.step, -1), n)):
        block = inferred.block_of_item[mine]
        if np.unique(block).size < inferred.count:
            continue  # launches unknown (a GPU-only trace): no op can be placed in a block
        firsts = np.full(inferred.count, np.inf)
        np.minimum.at(firsts, block, launched[mine])
        last = float(launched[mine][block == inferred.count - 1].max())
        at = flops.start[flop_rows[s]]
        k = np.searchsorted(firsts, at, side="right") - 1
        flop_block[flop_rows[s]] = np.where((k >= 0) & (at <= last), k, -1)

    # Each block's rows by one sort; each sum over them in trace order, as a mask would take them,
    # so the figures do not move in the last digit with the grouping.
    block_rows = rows_by(inferred.block_of_item, inferred.count)
    flop_rows_of_block = rows_by(flop_block, inferred.count)
    rows = []
    for b in range(inferred.count):
        mine = block_rows[b]
        us = float(items.dur[mine].sum()) / n
        known = flops.has_shapes and flops_known(float(items.dur[mine[uncounted[mine]]].sum()) / n, us)
        f = float(flops.flops[flop_rows_of_block[b]].sum()) / n if known else None
        tfl = f / (us * 1e6) if f and us > 0 else None
        mfu = tfl / peak if tfl is not None and peak else None
        rows.append(
            BlockRow(
                index=b,
                name=f"kernels {inferred.first_kernel + b * inferred.period}-"
                f"{inferred.first_kernel + (b + 1) * inferred.period - 1} of each step",
                kind="inferred",
                gpu_ms=us / 1e3,
                self_ms=us / 1e3,
                forward_ms=us / 1e3,
                backward_ms=0.0,
                share_pct=100.0 * us / kernel_us if kernel_us else 0.0,
                flops=f,
                tflops=tfl,
                mfu=mfu if mfu is None or mfu <= 1.0 else None,
                flop_coverage=float(items.dur[mine[flops.item_covered[mine]]].sum()) / n / us if us else None,
                params=None,
            )
        )
    return rows
