"""What do module scopes cost? Plain forward vs traceparse scopes vs per-module sync hooks.

Run on the GPU box (one process, one model at a time, same inputs):
    python scripts/bench_capture.py --presets nemotron-nano-9b-v2 llama-3.1-8b --seq-len 215

The baseline is the plain forward in the same run. "sync hooks" is the seed report's method: a
device synchronize and a perf_counter read before and after every module. Target: the scopes'
overhead is at most half of the sync hooks' overhead on every model.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from traceparse.capture.model import build_model
from traceparse.capture.options import CaptureOptions
from traceparse.capture.scopes import module_scopes
from traceparse.capture.timing import synchronize, time_ms
from traceparse.capture.workload import make_workload


@contextmanager
def sync_hooks(model: nn.Module, device: torch.device) -> Iterator[dict[str, float]]:
    """The hook-based profiler the seed used: sync + timestamp around each module call."""
    totals: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        starts: list[float] = []

        def pre(_m: nn.Module, _a: object, _s: list[float] = starts) -> None:
            synchronize(device)
            _s.append(time.perf_counter())

        def post(_m: nn.Module, _a: object, _o: object, _n: str = name, _s: list[float] = starts) -> None:
            synchronize(device)
            totals[_n] = totals.get(_n, 0.0) + time.perf_counter() - _s.pop()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield totals
    finally:
        for h in handles:
            h.remove()


def bench(preset: str, seq_len: int, runs: int, device: str | None, layers: int | None) -> dict[str, object]:
    opts = CaptureOptions(preset=preset, seq_len=seq_len, device=device, layers=layers).validate()
    built = build_model(opts)
    work = make_workload(built, opts)
    rounds: dict[str, list[float]] = {"plain": [], "scopes": [], "sync_hooks": []}
    # Interleave the three variants round by round so clock and thermal drift hit all alike.
    for _ in range(3):
        rounds["plain"] += time_ms(work.forward, built.device, runs)
        with module_scopes(built.model):
            rounds["scopes"] += time_ms(work.forward, built.device, runs)
        with sync_hooks(built.model, built.device):
            rounds["sync_hooks"] += time_ms(work.forward, built.device, runs)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    scope_over = med["scopes"] - med["plain"]
    sync_over = med["sync_hooks"] - med["plain"]
    row = {
        "model": built.model_id,
        "device": torch.cuda.get_device_name(built.device) if built.device.type == "cuda" else "cpu",
        "seq_len": seq_len,
        "runs": len(rounds["plain"]),
        "plain_ms": med["plain"],
        "scopes_ms": med["scopes"],
        "sync_hooks_ms": med["sync_hooks"],
        "scopes_overhead_ms": scope_over,
        "sync_overhead_ms": sync_over,
        "scopes_ratio": med["scopes"] / med["plain"],
        "sync_ratio": med["sync_hooks"] / med["plain"],
        "scopes_over_sync_overhead": scope_over / sync_over if sync_over > 0 else float("nan"),
    }
    del work, built
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["qwen3-0.6b-tiny"])
    parser.add_argument("--seq-len", type=int, default=215)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for preset in args.presets:
        row = bench(preset, args.seq_len, args.runs, args.device, args.layers)
        rows.append(row)
        print(
            f"{row['model']:<28} plain {row['plain_ms']:8.2f} ms | scopes {row['scopes_ms']:8.2f} ms "
            f"(x{row['scopes_ratio']:.3f}) | sync hooks {row['sync_hooks_ms']:8.2f} ms "
            f"(x{row['sync_ratio']:.3f}) | scopes overhead / sync overhead = "
            f"{row['scopes_over_sync_overhead']:.3f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    ok = all(r["scopes_over_sync_overhead"] <= 0.5 for r in rows)  # type: ignore[operator]
    print("target (scopes overhead <= 1/2 of sync-hook overhead on every model):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
