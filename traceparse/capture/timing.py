"""Forward time without the profiler: the honest baseline the report compares against.

CUDA events bracket each run (no per-module sync); the median of several runs after warm-up
is what we keep. On the CPU perf_counter does the same job.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], None], device: torch.device, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(runs):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def median_ms(fn: Callable[[], None], device: torch.device, runs: int, warmup: int = 2) -> float:
    return statistics.median(time_ms(fn, device, runs, warmup))
