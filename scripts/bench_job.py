"""The job report at scale: N synthetic ranks from a real rank trace, one of them a straggler.

Each rank is a copy of a real H200 rank trace (fixtures/h200x2, rank 0) with its `distributedInfo`
set to (rank, N), every GPU item's duration scaled by a per-rank jitter (±2 %, seeded) and, on the
straggler rank, the kernels of one block slowed by 30 % (shifted so they stay in order on their
stream). Then, in one run, the same job report is made serially, on local processes and on a Dask
LocalCluster (if installed), each timed, with the coordinator's peak RSS (the launcher's
ru_maxrss of the calling process, the per-rank work being elsewhere); the straggler must be found.

    python scripts/bench_job.py --ranks 8 64
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "fixtures" / "h200x2" / "qwen3-0.6b-4l-forward-seq215-rank0.pt.trace.json.gz"
STRAGGLER_BLOCK = "model.layers.2"


def synthesize(n: int, out: Path, straggler: int, seed: int = 0) -> None:
    doc = json.loads(gzip.decompress(SOURCE.read_bytes()))
    events = doc["traceEvents"]
    # the straggler's slowed kernels: those launched inside the block's scope on the CPU
    scopes = [e for e in events if e.get("ph") == "X" and str(e.get("name", "")).startswith(STRAGGLER_BLOCK + " (")]
    launches = {
        e["args"]["correlation"]: e["ts"]
        for e in events
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})
    }
    gpu = sorted(
        (i for i, e in enumerate(events) if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e),
        key=lambda i: events[i]["ts"],
    )

    def in_block(e: dict[str, Any]) -> bool:
        t = launches.get(e.get("args", {}).get("correlation"), -1.0)
        return any(s["ts"] <= t <= s["ts"] + s["dur"] for s in scopes)

    slow = {i for i in gpu if events[i].get("cat") == "kernel" and in_block(events[i])}
    for rank in range(n):
        rng = random.Random(f"{seed}:{rank}")
        jitter = 1 + rng.uniform(-0.02, 0.02)
        copy = list(events)
        shift = 0.0  # later items move by what earlier ones grew: each stream stays in order
        for i in gpu:
            e = dict(events[i])
            factor = jitter * (1.3 if rank == straggler and i in slow else 1.0)
            e["ts"] = e["ts"] + shift
            shift += e["dur"] * (factor - 1)
            e["dur"] = e["dur"] * factor
            copy[i] = e
        rank_doc = {**doc, "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": n}, "traceEvents": copy}
        rank_doc.pop("traceparse", None)  # the metadata names rank 0: let distributedInfo speak
        (out / f"rank{rank}.pt.trace.json.gz").write_bytes(gzip.compress(json.dumps(rank_doc).encode(), 1))


def run(how: str, folder: Path) -> tuple[float, float, str]:
    """(wall s, coordinator peak RSS MB, straggler verdict) of one job report, in a fresh process."""
    code = f"""
import json, resource, sys, time
from traceparse.job import analyze_job
t = time.perf_counter()
kw = {{"workers": 1}} if {how!r} == "serial" else {{}}
if {how!r} == "dask":
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    kw = {{"scheduler": cluster.scheduler_address}}
job = analyze_job([{str(folder)!r}], **kw)
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps([wall, rss, job.straggler["verdict"] if job.straggler else ""]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        return float("nan"), float("nan"), done.stderr.strip().splitlines()[-1]
    wall, rss, verdict = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, rss, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--modes", nargs="+", default=["serial", "local", "dask"])
    args = ap.parse_args()
    print(f"source: {SOURCE.name}; straggler: {STRAGGLER_BLOCK} x1.3 on rank n//2")
    print(f"{'ranks':>5} {'mode':<7} {'wall s':>8} {'coord RSS MB':>13}  verdict")
    for n in args.ranks:
        with tempfile.TemporaryDirectory(prefix=f"bench-job-{n}-") as tmp:
            folder = Path(tmp)
            synthesize(n, folder, n // 2)
            for mode in args.modes:
                wall, rss, verdict = run(mode, folder)
                print(f"{n:>5} {mode:<7} {wall:>8.2f} {rss:>13.0f}  {verdict[:110]}")


if __name__ == "__main__":
    main()
