"""One rank's compact summary: what the job report needs, computed where the trace is read.

The per-rank work (load, index, attribute, FLOPs, report) runs in a worker — a local process or a
Dask worker — and only this summary travels back: the coordinator never holds a rank's events,
so its memory does not grow with the traces' size.

Communication is the kernels of the `communication` family (NCCL/RCCL); compute is every other
GPU item. *Exposed* communication is communication time not overlapped by compute on the same
device: |comm ∪ compute| − |compute|, per step. A collective's bus bandwidth follows NCCL's
tests: algorithm bandwidth (bytes / kernel time) times 2(n−1)/n for all-reduce, (n−1)/n for
all-gather, reduce-scatter and all-to-all, 1 otherwise; bytes are the larger of the in and out
message sizes (all-gather's output, reduce-scatter's input) times the dtype's size. Each
collective is also credited to the module call that issued it (its launch's module; a backward
kernel's, the forward module differentiated there): the issuers. A CPU-only rank (gloo) has no
kernels: job/host.py makes its split from gloo's own threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from traceparse.kernels import FAMILIES, item_families
from traceparse.rates import rows_by, union_us
from traceparse.scopes import PHASE_NAMES

if TYPE_CHECKING:
    from traceparse.api import Analysis
    from traceparse.attribute import Attribution, Items
    from traceparse.load import Events
    from traceparse.load.schema import CommArgs
    from traceparse.report import Report

DTYPE_BYTES = {
    "float": 4, "float32": 4, "bfloat16": 2, "half": 2, "float16": 2, "double": 8, "float64": 8,
    "long": 8, "int64": 8, "int": 4, "int32": 4, "short": 2, "char": 1, "byte": 1, "bool": 1,
    "int8": 1, "uint8": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}  # fmt: skip


@dataclass(frozen=True)
class CollectiveRow:
    collective: str  # the trace's "Collective name", else from the kernel name
    calls: float  # per step
    ms: float  # kernel time per step
    bytes_per_call: float | None
    algbw_gbps: float | None  # bytes / kernel time, over the calls with known sizes
    busbw_gbps: float | None
    group_size: int | None


@dataclass(frozen=True)
class IssuerRow:
    """Communication one module call site issued: forward, or (backward) its gradient's."""

    module: str  # "model.layers.0.self_attn.o_proj (Linear)", "(no module)"
    phase: str  # forward, backward, loss, optimizer, …
    collective: str
    calls: float  # per step
    ms: float  # per step


@dataclass(frozen=True)
class BlockTime:
    index: int
    kind: str
    gpu_ms: float
    comm_ms: float


@dataclass(frozen=True)
class RankSummary:
    rank: int
    path: str
    device: str | None
    model: str | None
    steps: int
    step_ms: float  # mean ProfilerStep wall time
    kernel_ms: float
    busy_ms: float | None
    idle_pct: float | None
    compute_ms: float
    comm_ms: float
    exposed_comm_ms: float
    blocks: tuple[BlockTime, ...]
    collectives: tuple[CollectiveRow, ...]
    effective_tflops: float | None
    notes: tuple[str, ...]
    cpu_only: bool = False  # no GPU items: communication from gloo's threads (job/host.py)
    issuers: tuple[IssuerRow, ...] = ()


@dataclass(frozen=True)
class Split:
    """A rank's compute/communication figures (ms per step), its blocks and collectives."""

    compute_ms: float
    comm_ms: float
    exposed_comm_ms: float
    blocks: tuple[BlockTime, ...]
    collectives: tuple[CollectiveRow, ...]
    issuers: tuple[IssuerRow, ...]


def summarize(path: str, rank: int, attention: str = "causal") -> RankSummary:
    """The whole single-trace pipeline on one rank's trace, reduced to its summary."""
    from traceparse.api import run_pipeline

    analysis = run_pipeline(path, attention)  # type: ignore[arg-type]
    report, attr = analysis.report, analysis.attribution
    n = attr.n_steps
    g = report.general
    if attr.mode == "cpu":  # no kernels: gloo's own threads run the collectives (job/host.py)
        from traceparse.job.host import host_split

        split = host_split(analysis, n)
    else:
        split = _device_split(analysis, n)
    return RankSummary(
        rank=rank,
        path=str(Path(path)),
        device=g.device,
        model=g.model,
        steps=g.steps,
        step_ms=float(g.wall_ms or 0.0),
        kernel_ms=g.kernel_ms,
        busy_ms=g.gpu_busy_ms,
        idle_pct=g.gpu_idle_pct,
        compute_ms=split.compute_ms,
        comm_ms=split.comm_ms,
        exposed_comm_ms=split.exposed_comm_ms,
        blocks=split.blocks,
        collectives=split.collectives,
        effective_tflops=g.effective_tflops,
        notes=tuple(report.notes),
        cpu_only=attr.mode == "cpu",
        issuers=split.issuers,
    )


def _device_split(analysis: Analysis, n: int) -> Split:
    """Communication is the kernels of the communication family; compute every other GPU item."""
    report, attr = analysis.report, analysis.attribution
    items, ev = attr.items, attr.index.events
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row])
    comm = fam == FAMILIES.index("communication")
    in_steps = items.step >= 0
    # |comm ∪ compute| is the step's GPU busy time, which the report already has.
    exposed = 0.0
    for step, mine in zip(report.steps, rows_by(np.where(comm, -1, items.step), n), strict=True):
        if step.gpu_busy_ms is not None:
            exposed += step.gpu_busy_ms * 1e3 - union_us(items.start[mine], items.end[mine])
    comm_us = float(items.dur[in_steps & comm].sum())
    return Split(
        compute_ms=report.general.kernel_ms - comm_us / 1e3 / n,
        comm_ms=comm_us / 1e3 / n,
        exposed_comm_ms=exposed / 1e3 / n,
        blocks=_block_times(attr, report, comm, n),
        collectives=_collectives(ev, items, comm & in_steps, n),
        issuers=issuer_rows(
            attr,
            items.call[comm & in_steps],
            items.phase[comm & in_steps],
            _collective_keys(ev, items, comm & in_steps),
            items.dur[comm & in_steps],
            items.op[comm & in_steps],
            n,
        ),
    )


def issuer_rows(
    attr: Attribution, call: np.ndarray, phase: np.ndarray, keys: list[str], dur: np.ndarray, op: np.ndarray, n: int
) -> tuple[IssuerRow, ...]:
    """Communication per (issuing module call site, phase, collective), slowest first. `op`: per
    row the forest position of the op that issued it, whose caller names a row no module issued."""
    calls = attr.calls
    acc: dict[tuple[str, str, str], list[float]] = {}
    for c, p, k, d, o in zip(call.tolist(), phase.tolist(), keys, dur.tolist(), op.tolist(), strict=True):
        module = f"{calls.qual[c]} ({calls.cls[c]})" if c >= 0 else f"(no module: {_caller(attr, o)})"
        acc.setdefault((module, PHASE_NAMES[p], k), []).append(d)
    rows = [IssuerRow(m, p, k, len(v) / n, sum(v) / 1e3 / n) for (m, p, k), v in acc.items()]
    return tuple(sorted(rows, key=lambda r: (-r.ms, r.module)))


def _caller(attr: Attribution, pos: int) -> str:
    """The innermost event around an issuing op that is not a collective's own (c10d op,
    record_param_comms): where communication outside every module scope came from — DDP's
    `DistributedDataParallel.forward` (buffer broadcast), autograd's `AccumulateGrad` node (the
    gradient bucket hook)."""
    ev, forest = attr.index.events, attr.index.forest
    if pos < 0:
        return "issuing op not in the trace"
    while pos >= 0:
        name = ev.names[ev.name[forest.rows[pos]]]
        if "c10d" not in name and name != "record_param_comms" and "nccl" not in name.lower():
            return name.removeprefix("autograd::engine::evaluate_function: ")
        pos = int(forest.parent[pos])
    return "top level"


def _collective_keys(ev: Events, items: Items, sel: np.ndarray) -> list[str]:
    """Per selected item: its collective, from the kernel's arguments, else from its name."""
    code = ev.comm[items.event_row[sel]] if ev.comm is not None else np.full(int(sel.sum()), -1)
    name_ids = ev.name[items.event_row[sel]]
    return [
        ev.comms[c].collective if c >= 0 else _collective_from_kernel(ev.names[i])
        for c, i in zip(code.tolist(), name_ids.tolist(), strict=True)
    ]


def _block_times(attr: Attribution, report: Report, comm: np.ndarray, n: int) -> tuple[BlockTime, ...]:
    """Each block's GPU time (from the report) and the communication its calls issued."""
    from traceparse.blocks import block_of_calls, find_blocks

    rows = report.blocks
    if not rows:
        return ()
    calls, items = attr.calls, attr.items
    blocks = find_blocks(calls, None, attr.inclusive_us())
    block_of = np.append(block_of_calls(calls, blocks.index_of_call), -1)
    item_block = block_of[items.call]
    mine = comm & (items.step >= 0)
    comm_us = {int(b): float(items.dur[mine & (item_block == b)].sum()) for b in np.unique(item_block[mine])}
    return tuple(BlockTime(b.index, b.kind, b.gpu_ms, comm_us.get(b.index, 0.0) / 1e3 / n) for b in rows)


def _collectives(ev: Events, items: Items, sel: np.ndarray, n: int) -> tuple[CollectiveRow, ...]:
    names, comms = ev.names, ev.comms
    code = ev.comm[items.event_row] if ev.comm is not None else np.full(len(sel), -1)
    name_ids = ev.name[items.event_row]
    rows: dict[str, list[tuple[float, float | None, int | None]]] = {}
    for i in np.flatnonzero(sel).tolist():
        c = comms[code[i]] if code[i] >= 0 else None
        key = c.collective if c is not None else _collective_from_kernel(names[name_ids[i]])
        size = _bytes(c) if c is not None else None
        rows.setdefault(key, []).append((float(items.dur[i]), size, c.group_size if c is not None else None))
    out = []
    for key, calls in sorted(rows.items(), key=lambda kv: -sum(d for d, _, _ in kv[1])):
        known = [(d, b, g) for d, b, g in calls if b is not None and d > 0]
        sizes = [b for _, b, _ in known if b is not None]
        group = next((g for _, _, g in known if g), None)
        algbw = sum(sizes) / sum(d for d, _, _ in known) / 1e3 if known else None  # bytes/µs → GB/s
        out.append(
            CollectiveRow(
                collective=key,
                calls=len(calls) / n,
                ms=sum(d for d, _, _ in calls) / 1e3 / n,
                bytes_per_call=sum(sizes) / len(sizes) if sizes else None,
                algbw_gbps=algbw,
                busbw_gbps=algbw * _bus_factor(key, group) if algbw is not None and group else None,
                group_size=group,
            )
        )
    return tuple(out)


def _bytes(c: CommArgs) -> float | None:
    size = DTYPE_BYTES.get(str(c.dtype).lower())
    elems = max(c.in_nelems or 0, c.out_nelems or 0)
    return float(elems * size) if size and elems else None


def _bus_factor(collective: str, n: int) -> float:
    name = collective.lower().replace("_", "")
    if "allreduce" in name:
        return 2 * (n - 1) / n
    if any(k in name for k in ("allgather", "reducescatter", "alltoall")):
        return (n - 1) / n
    return 1.0


def _collective_from_kernel(kernel: str) -> str:
    """ "ncclDevKernel_AllReduce_Sum_f32_RING_LL(…)" → "AllReduce": traces before torch 2.1."""
    head = kernel.split("(")[0]
    for part in head.split("_")[1:]:
        if part and part[0].isupper() and part not in ("RING", "TREE", "LL", "LL128", "SIMPLE", "NVLS"):
            return part
    return head
