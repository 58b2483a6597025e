"""The map and the reduce: one summary per rank, in parallel, then the job report.

Per-rank work is a map: local processes by default (one per core, at most one per rank), or a
Dask cluster with `scheduler=` (`pip install 'traceparse[dask]'`), where the traces must be
readable at the same path by the workers (a shared filesystem). The coordinator receives only
the summaries, so its memory stays flat as ranks are added.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from traceparse.errors import UsageError
from traceparse.job.inputs import RankTrace, job_ranks, trace_files
from traceparse.job.report import JobReport, build_job_report
from traceparse.job.summary import RankSummary, summarize


def analyze_job(
    inputs: Sequence[str | Path],
    *,
    cycle: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    attention: str = "causal",
) -> JobReport:
    ranks = job_ranks(trace_files(inputs), cycle)
    summaries = _map(ranks, workers, scheduler, attention)
    world = next((r.world_size for r in ranks if r.world_size), None)
    notes = []
    sources = {r.rank_from for r in ranks}
    if "file order" in sources:
        notes.append("The traces name no rank: ranks are numbered in file-name order.")
    if any(r.cycle for r in ranks):
        notes.append(f"Several profiling cycles per rank: cycle {ranks[0].cycle} (--cycle chooses).")
    return build_job_report(summaries, world, notes)


def _map(ranks: list[RankTrace], workers: int | None, scheduler: str | None, attention: str) -> list[RankSummary]:
    args = [(str(r.path), r.rank, attention) for r in ranks]
    if scheduler:
        return _dask_map(args, scheduler)
    n = min(len(args), workers or os.cpu_count() or 1)
    if n <= 1:
        return [summarize(*a) for a in args]
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"), initializer=_one_decoder) as pool:
        return list(pool.map(summarize, *zip(*args, strict=True)))


def _one_decoder() -> None:
    """In a rank worker: ranks are the parallelism, so each decodes its trace in-process (no pool
    inside the pool). Set in the worker only: the caller's own analyses keep their workers."""
    os.environ["TRACEPARSE_WORKERS"] = "1"


def _dask_map(args: list[tuple[str, int, str]], scheduler: str) -> list[RankSummary]:
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'traceparse[dask]'") from None
    with Client(scheduler) as client:
        futures = client.map(summarize, *zip(*args, strict=True), pure=False)
        return list(client.gather(futures))
