"""Issue #14: one report for a whole distributed job.

Real rank traces: fixtures/h200x2 (two ranks of a torchrun capture on 2×H200) and two ranks of
param's DLRM job (fixtures/foreign, world size 8, NCCL SendRecv/AllReduce). The figures the job
report shows per rank are checked against each rank's own single-trace report, computed apart;
exposed communication and bus bandwidth against hand computations on the events.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_bad_input import run_cli
from traceparse.api import run_pipeline
from traceparse.job import analyze_job
from traceparse.job.inputs import job_ranks, trace_files
from traceparse.job.summary import _bus_factor, _collective_from_kernel

H200X2 = ROOT / "fixtures" / "h200x2"
FOREIGN = ROOT / "fixtures" / "foreign"
DLRM = [
    FOREIGN / "param-dlrm-worker0_step_12.1694128201545.pt.trace.json.gz",
    FOREIGN / "param-dlrm-worker3_step_12.1694128201557.pt.trace.json.gz",
]


def test_a_rank_folder_gives_the_job_report_with_each_ranks_own_figures() -> None:
    job = analyze_job([H200X2], workers=2)
    assert job.world_size == 2 and [r.rank for r in job.ranks] == [0, 1]
    for row in job.ranks:
        own = run_pipeline(next(H200X2.glob(f"*rank{row.rank}*"))).report.general
        assert row.kernel_ms == pytest.approx(own.kernel_ms) and row.step_ms == pytest.approx(own.wall_ms)
    assert [b.index for b in job.blocks] == [0, 1, 2, 3]
    for b in job.blocks:
        assert b.min_ms <= b.median_ms <= b.max_ms
    assert job.straggler is not None and job.straggler["rank"] is None  # two identical forwards


def test_ranks_come_from_distributed_info_and_communication_is_split() -> None:
    job = analyze_job(DLRM, workers=1)
    assert [r.rank for r in job.ranks] == [0, 3] and job.world_size == 8
    assert any("2 of 8 ranks" in n for n in job.notes)
    for row, path in zip(job.ranks, DLRM, strict=True):
        doc = json.loads(gzip.decompress(path.read_bytes()))
        nccl = [e for e in doc["traceEvents"] if e.get("cat") == "kernel" and "nccl" in e["name"].lower()]
        assert row.comm_ms == pytest.approx(sum(e["dur"] for e in nccl) / 1e3, rel=1e-9)
        assert row.compute_ms + row.comm_ms == pytest.approx(row.kernel_ms)
        # exposed: communication not overlapped by compute, by hand: |GPU work| − |GPU work but NCCL|
        # over the one profiler step's kernels, copies and sets (in plain Python, apart from numpy)
        assert sum(e.get("name", "").startswith("ProfilerStep#") for e in doc["traceEvents"]) == 1
        gpu = [e for e in doc["traceEvents"] if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
        compute = [e for e in gpu if "nccl" not in e["name"].lower()]
        assert row.exposed_comm_ms == pytest.approx((_covered_us(gpu) - _covered_us(compute)) / 1e3, rel=1e-9)
        assert 0 < row.exposed_comm_ms <= row.comm_ms + 1e-9
    assert {c.collective for c in job.collectives} == {"SendRecv", "AllReduce"}


def _covered_us(events: list[dict]) -> float:
    """The length of the union of the events' [ts, ts + dur) intervals."""
    total, end = 0.0, float("-inf")
    for e in sorted(events, key=lambda e: e["ts"]):
        lo, hi = e["ts"], e["ts"] + e["dur"]
        total += max(0.0, hi - max(lo, end))
        end = max(end, hi)
    return total


def test_bus_bandwidth_follows_nccl_tests() -> None:
    """hta-nccl_data records each collective's sizes: algbw = bytes / time, busbw = algbw · 2(n−1)/n."""
    from traceparse.job.summary import summarize

    path = FOREIGN / "hta-nccl_data.json.gz"
    s = summarize(str(path), 0)
    allreduce = next(c for c in s.collectives if c.collective == "allreduce")
    doc = json.loads(gzip.decompress(path.read_bytes()))
    steps = [
        e
        for e in doc["traceEvents"]
        if e.get("name", "").startswith("ProfilerStep#") and e.get("cat") != "gpu_user_annotation"
    ]
    lo, hi = steps[0]["ts"], steps[0]["ts"] + steps[0]["dur"]
    launches = {e["args"]["correlation"]: e["ts"] for e in doc["traceEvents"] if e.get("cat") == "cuda_runtime"}
    ks = [
        e
        for e in doc["traceEvents"]
        if e.get("cat") == "kernel"
        and e["args"].get("Collective name") == "allreduce"
        and lo <= launches.get(e["args"]["correlation"], -1) <= hi
    ]
    size = sum(4 * e["args"]["In msg nelems"] for e in ks)
    algbw = size / sum(e["dur"] for e in ks) / 1e3
    assert allreduce.algbw_gbps == pytest.approx(algbw, rel=1e-9)
    assert allreduce.busbw_gbps == pytest.approx(algbw * 2 * (2 - 1) / 2, rel=1e-9)
    assert _bus_factor("_allgather_base", 8) == pytest.approx(7 / 8)
    assert (
        _collective_from_kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)")
        == "AllReduce"
    )


def test_cycles_and_mixed_jobs(tmp_path: Path) -> None:
    """tensorboard_trace_handler: one file per worker and cycle (a ms timestamp in the name)."""
    for rank in (0, 1):
        src = next(H200X2.glob(f"*rank{rank}*"))
        for stamp in (1700000000000, 1700000005000):
            shutil.copy(src, tmp_path / f"worker{rank}.{stamp}.pt.trace.json.gz")
    ranks = job_ranks(trace_files([tmp_path]))
    assert [(r.rank, r.cycle) for r in ranks] == [(0, 1), (1, 1)]  # the latest by default
    assert all("1700000005000" in r.path.name for r in ranks)
    assert [r.cycle for r in job_ranks(trace_files([tmp_path]), cycle=0)] == [0, 0]


def test_the_cli_prints_the_job_report_in_every_format(tmp_path: Path) -> None:
    table = run_cli("analyze", H200X2, "-q")
    assert table.rc == 0, table.stderr
    assert "job: 2 rank(s) of 2" in table.stdout and "Blocks across ranks" in table.stdout
    as_json = run_cli("analyze", H200X2 / "*.json.gz", "-q", "-f", "json")
    assert as_json.rc == 0 and as_json.report["schema"] == "traceparse.job/1"
    md = run_cli("analyze", *sorted(H200X2.glob("*.gz")), "-q", "-f", "markdown", "-o", tmp_path / "job.md")
    assert md.rc == 0 and (tmp_path / "job.md").read_text().startswith("# job: 2 rank(s) of 2")


def test_the_dask_path_gives_the_same_report_as_the_local_one() -> None:
    """In a subprocess: Dask leaves threads running in the process that used it, and a process
    with threads no longer forks the loader's workers (the other tests need them)."""
    pytest.importorskip("distributed")
    local = analyze_job(DLRM, workers=2).to_dict()
    code = f"""
import json
from distributed import LocalCluster
from traceparse.job import analyze_job
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
    job = analyze_job({[str(p) for p in DLRM]!r}, scheduler=cluster.scheduler_address)
print(json.dumps(job.to_dict(), sort_keys=True))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == json.dumps(local, sort_keys=True)
