#!/usr/bin/env python3
"""Merge HolisticTraceAnalysis' kernel total into a reference.json.

For every Kineto entry of the reference file (written by
scripts/reference_figures.py), runs, in a child process with a time limit,

    TraceAnalysis(trace_files={0: path}, trace_dir=dirname(path),
                  include_last_profiler_step=True
                  ).get_gpu_kernel_breakdown(visualize=False)

with HTA_DISABLE_NS_ROUNDING=1, and stores

    hta_kernel_us  = sum of the "sum" column of the kernel-type table
                     (null when HTA fails),
    hta_error      = the first line of HTA's error (only on failure),
    hta_version    = the installed HolisticTraceAnalysis version.

Usage (with a Python that has HTA installed):
    .venv-test/bin/python scripts/reference_hta.py fixtures/foreign \
        [-r fixtures/foreign/reference.json] [--timeout 300] [-j 4]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys


def one(path: str) -> int:
    os.environ["HTA_DISABLE_NS_ROUNDING"] = "1"
    import contextlib
    import io
    import logging

    logging.disable(logging.CRITICAL)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            from hta.trace_analysis import TraceAnalysis

            ta = TraceAnalysis(trace_files={0: path}, trace_dir=os.path.dirname(path), include_last_profiler_step=True)
            res = ta.get_gpu_kernel_breakdown(visualize=False)
            table = res[0] if isinstance(res, tuple) else res
            col = "sum" if "sum" in table.columns else next(c for c in table.columns if "sum" in c)
            total = float(table[col].sum())
        print(json.dumps({"hta_kernel_us": round(total, 3)}))
    except BaseException as exc:  # we record whatever HTA raises
        msg = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
        print(json.dumps({"hta_kernel_us": None, "hta_error": msg[:300]}))
    return 0


def run_child(path: str, timeout: int) -> dict:
    env = dict(os.environ, HTA_DISABLE_NS_ROUNDING="1")
    try:
        p = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", path],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"hta_kernel_us": None, "hta_error": f"timeout after {timeout}s"}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    err = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"hta_kernel_us": None, "hta_error": f"rc={p.returncode}: {err}"[:300]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?")
    ap.add_argument("-r", "--reference")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("-j", "--jobs", type=int, default=4)
    ap.add_argument("--one")
    a = ap.parse_args(argv)
    if a.one:
        return one(a.one)
    if not a.folder:
        ap.error("folder required")
    ref_path = a.reference or os.path.join(a.folder, "reference.json")
    with open(ref_path) as fh:
        ref = json.load(fh)
    try:
        from importlib.metadata import version

        hv = version("HolisticTraceAnalysis")
    except Exception:
        hv = None
    todo = {k: os.path.join(a.folder, k) for k, v in ref.items() if v.get("kineto")}
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(run_child, p, a.timeout): k for k, p in todo.items()}
        for f in cf.as_completed(futs):
            k = futs[f]
            res = f.result()
            ref[k].pop("hta_error", None)
            ref[k].update(res)
            ref[k]["hta_version"] = hv
            print(f"{k}: {res}", file=sys.stderr)
    with open(ref_path, "w") as fh:
        json.dump(ref, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
