"""The README's eager / CUDA graphs / compiled / compiled + graphs table, from a folder of captures.

    python scripts/compile_table.py DIR [--json OUT.json]

Reads `<stem>-<workload>-<variant>.pt.trace.json.gz` as `scripts/device_compile.sh` names them
(variant: eager, graphs, compile, compile-graphs) and prints one Markdown row per capture:

- step ms: the uninstrumented time `capture` measured with CUDA events and no profiler (forward:
  one forward; decode: one generate step, prefill + 15 tokens);
- token ms (decode): per-token decode latency under the profiler (generation section, median);
- GPU busy ms: the union of kernel intervals per step under the profiler; "not busy" = step ms −
  busy ms: what launches and the CPU cost beyond the kernels (what CUDA graphs remove); n/a where
  the profiled kernels alone took longer than the unprofiled step;
- GEMM / other ms: kernel time of the GEMM family and of everything but GEMM and attention
  (elementwise, reductions, norms: what fusion shrinks);
- kernels: launches per step; block ms: mean per-block GPU time; matched: share of recovered
  kernel time given to a module (compiled regions, graph replays).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traceparse.api import run_pipeline

VARIANTS = ("eager", "graphs", "compile", "compile-graphs")
NAME = re.compile(r"^(?P<stem>.+?)-(?P<work>fwd\d+|decode)-(?P<variant>eager|graphs|compile|compile-graphs)\.pt\.trace")


def row(path: Path) -> dict[str, Any]:
    report = run_pipeline(path).report
    g = report.general
    fam = {f.family: f.kernel_ms for f in report.kernel_families}
    gen = report.generation or {}
    step = g.step_ms_uninstrumented if g.mode == "generate" else g.forward_ms_uninstrumented
    busy = g.gpu_busy_ms
    kernels = sum(f.count for f in report.kernel_families)
    matched = [r["matched_pct"] for r in report.recovered if r["matched_pct"] is not None]
    return {
        "step_ms": step,
        "token_ms": gen.get("decode_ms_median"),
        "busy_ms": busy,
        # Under the profiler a GPU-bound step's kernels can take longer than the whole unprofiled
        # step: a negative difference says nothing of launch cost, so none is shown.
        "not_busy_ms": step - busy
        if step is not None and busy is not None and g.mode != "generate" and step >= busy
        else None,
        "gemm_ms": fam.get("gemm", 0.0),
        "other_ms": sum(v for k, v in fam.items() if k not in ("gemm", "attention")),
        "kernels": kernels,
        "block_ms": sum(b.gpu_ms for b in report.blocks) / len(report.blocks) if report.blocks else None,
        "matched_pct": min(matched) if matched else None,
    }


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for path in sorted(args.folder.glob("*.pt.trace.json.gz")):
        m = NAME.match(path.name)
        if m:
            found.setdefault((m["stem"], m["work"]), {})[m["variant"]] = row(path)
    print(
        "| model | workload | variant | step ms | token ms | GPU busy ms | not busy ms | GEMM ms | other ms "
        "| kernels | block ms | matched % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (stem, work), variants in found.items():
        for v in VARIANTS:
            r = variants.get(v)
            if r is None:
                continue
            print(
                f"| {stem} | {work} | {v} | {_f(r['step_ms'])} | {_f(r['token_ms'], '{:.3f}')} | {_f(r['busy_ms'])} "
                f"| {_f(r['not_busy_ms'])} | {_f(r['gemm_ms'])} | {_f(r['other_ms'])} | {r['kernels']:.0f} "
                f"| {_f(r['block_ms'], '{:.3f}')} | {_f(r['matched_pct'], '{:.1f}')} |"
            )
    if args.json:
        args.json.write_text(json.dumps({f"{s}-{w}": v for (s, w), v in found.items()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
