"""The job report (`traceparse.job/1`): the ranks side by side, reduced from their summaries.

Per rank: step time, GPU time, busy, idle, compute vs communication and the exposed part. Per
block: the median, min and max GPU time across ranks, the slowest rank and the skew ((max − min) /
median). Per collective: calls, time and bus bandwidth across ranks; per issuing module: which
module call site (forward, or its backward) issued which collective, how often, for how long.
CPU-only ranks (gloo) are reduced the same way from job/host.py's split. And a straggler verdict: the
rank whose compute takes longest, by how much over the median, and the block where most of the
excess is — the others wait for it in their collectives (their exposed communication grows).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, fields
from typing import Any

from traceparse.job.summary import RankSummary

SCHEMA = "traceparse.job/1"
CPU_NOTE = (
    "CPU-only traces (gloo): communication is gloo's collective spans on its own threads, each matched "
    "to the c10d op (and so the module) that issued it; compute is the main thread's operator time; "
    "the 'cpu' column is CPU self time summed over threads."
)
STRAGGLER_PCT = 5.0  # compute above the median by more than this names a straggler


@dataclass(frozen=True)
class RankRow:
    rank: int
    step_ms: float
    kernel_ms: float
    busy_ms: float | None
    idle_pct: float | None
    compute_ms: float
    comm_ms: float
    exposed_comm_ms: float
    effective_tflops: float | None
    path: str


@dataclass(frozen=True)
class BlockAcross:
    index: int
    kind: str
    median_ms: float
    min_ms: float
    max_ms: float
    slowest_rank: int
    skew_pct: float
    comm_ms_median: float


@dataclass(frozen=True)
class CollectiveAcross:
    collective: str
    ranks: int
    calls: float  # per step, median over ranks
    ms_median: float
    ms_max: float
    busbw_gbps_median: float | None
    busbw_gbps_min: float | None
    group_size: int | None


@dataclass(frozen=True)
class IssuerAcross:
    """Communication one module call site issued, across ranks (per step)."""

    module: str
    phase: str
    collective: str
    ranks: int
    calls: float  # median over ranks
    ms_median: float
    ms_max: float


@dataclass(frozen=True)
class JobReport:
    world_size: int | None
    ranks: tuple[RankRow, ...]
    blocks: tuple[BlockAcross, ...]
    collectives: tuple[CollectiveAcross, ...]
    straggler: dict[str, Any] | None
    device: str | None
    model: str | None
    notes: tuple[str, ...]
    issuers: tuple[IssuerAcross, ...] = ()
    cpu_only: bool = False  # every rank CPU-only (gloo): times are host times, see job/host.py

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "world_size": self.world_size,
            "device": self.device,
            "model": self.model,
            "ranks": [asdict(r) for r in self.ranks],
            "blocks": [asdict(b) for b in self.blocks],
            "collectives": [asdict(c) for c in self.collectives],
            "issuers": [asdict(i) for i in self.issuers],
            "cpu_only": self.cpu_only,
            "straggler": self.straggler,
            "notes": list(self.notes),
        }


def build_job_report(summaries: list[RankSummary], world_size: int | None, notes: list[str]) -> JobReport:
    ranks = sorted(summaries, key=lambda s: s.rank)
    rank_rows = tuple(RankRow(**{f.name: getattr(s, f.name) for f in fields(RankRow)}) for s in ranks)
    blocks = _blocks(ranks)
    if ranks and all(s.cpu_only for s in ranks):
        notes = [*notes, CPU_NOTE]
    if world_size is not None and len(ranks) < world_size:
        notes = [*notes, f"{len(ranks)} of {world_size} ranks' traces were given: the others are not in the tables."]
    return JobReport(
        world_size=world_size,
        ranks=rank_rows,
        blocks=blocks,
        collectives=_collectives(ranks),
        straggler=_straggler(ranks, blocks),
        device=_common(s.device for s in ranks),
        model=_common(s.model for s in ranks),
        notes=tuple(notes),
        issuers=_issuers(ranks),
        cpu_only=bool(ranks) and all(s.cpu_only for s in ranks),
    )


def _blocks(ranks: list[RankSummary]) -> tuple[BlockAcross, ...]:
    per: dict[int, list[tuple[int, str, float, float]]] = {}
    for s in ranks:
        for b in s.blocks:
            per.setdefault(b.index, []).append((s.rank, b.kind, b.gpu_ms, b.comm_ms))
    out = []
    for index in sorted(per):
        rows = per[index]
        times = [t for _, _, t, _ in rows]
        med = statistics.median(times)
        slow = max(rows, key=lambda r: r[2])
        out.append(
            BlockAcross(
                index=index,
                kind=rows[0][1],
                median_ms=med,
                min_ms=min(times),
                max_ms=max(times),
                slowest_rank=slow[0],
                skew_pct=100.0 * (max(times) - min(times)) / med if med > 0 else 0.0,
                comm_ms_median=statistics.median(c for _, _, _, c in rows),
            )
        )
    return tuple(out)


def _collectives(ranks: list[RankSummary]) -> tuple[CollectiveAcross, ...]:
    per: dict[str, list[Any]] = {}
    for s in ranks:
        for c in s.collectives:
            per.setdefault(c.collective, []).append(c)
    out = []
    for name, rows in per.items():
        bw = [c.busbw_gbps for c in rows if c.busbw_gbps is not None]
        out.append(
            CollectiveAcross(
                collective=name,
                ranks=len(rows),
                calls=statistics.median(c.calls for c in rows),
                ms_median=statistics.median(c.ms for c in rows),
                ms_max=max(c.ms for c in rows),
                busbw_gbps_median=statistics.median(bw) if bw else None,
                busbw_gbps_min=min(bw) if bw else None,
                group_size=next((c.group_size for c in rows if c.group_size), None),
            )
        )
    out.sort(key=lambda c: -c.ms_median)
    return tuple(out)


def _issuers(ranks: list[RankSummary]) -> tuple[IssuerAcross, ...]:
    per: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for s in ranks:
        for i in s.issuers:
            per.setdefault((i.module, i.phase, i.collective), []).append((i.calls, i.ms))
    out = [
        IssuerAcross(
            module=m,
            phase=p,
            collective=c,
            ranks=len(rows),
            calls=statistics.median(n for n, _ in rows),
            ms_median=statistics.median(t for _, t in rows),
            ms_max=max(t for _, t in rows),
        )
        for (m, p, c), rows in per.items()
    ]
    return tuple(sorted(out, key=lambda i: (-i.ms_median, i.module)))


def _straggler(ranks: list[RankSummary], blocks: tuple[BlockAcross, ...]) -> dict[str, Any] | None:
    if len(ranks) < 2:
        return None
    med = statistics.median(s.compute_ms for s in ranks)
    slow = max(ranks, key=lambda s: s.compute_ms)
    excess_pct = 100.0 * (slow.compute_ms - med) / med if med > 0 else 0.0
    if excess_pct <= STRAGGLER_PCT:
        return {"rank": None, "verdict": f"no straggler: every rank's compute within {STRAGGLER_PCT:g} % of the median"}
    by_block = {b.index: b.median_ms for b in blocks}
    worst = max(slow.blocks, key=lambda b: b.gpu_ms - by_block.get(b.index, b.gpu_ms), default=None)
    where = (
        f"; most in block {worst.index} ({worst.kind}: {worst.gpu_ms:.3f} ms vs median {by_block[worst.index]:.3f})"
        if worst is not None and worst.gpu_ms > by_block.get(worst.index, worst.gpu_ms)
        else ""
    )
    return {
        "rank": slow.rank,
        "compute_ms": slow.compute_ms,
        "median_compute_ms": med,
        "excess_pct": excess_pct,
        "block": worst.index if where and worst is not None else None,
        "verdict": f"rank {slow.rank} computes {excess_pct:.1f} % longer than the median rank "
        f"({slow.compute_ms:.3f} vs {med:.3f} ms per step){where}; the others wait in their collectives",
    }


def _common(values: Any) -> Any:
    distinct = {v for v in values if v is not None}
    return distinct.pop() if len(distinct) == 1 else None
