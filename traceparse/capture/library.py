"""The same trace `capture` writes, from the user's own loop: scopes, metadata, uninstrumented time.

    with traceparse.scopes(model), torch.profiler.profile(..., on_trace_ready=handler) as prof:
        traceparse.attach_metadata(prof, model, mode="train", seq_len=..., batch_size=...)

`attach_metadata` does not go through `prof.add_metadata_json`: what that method reaches, and when
it must be called, differs across torch versions, and the block also holds numbers measured after
profiling (timings). Instead the profiler's `export_chrome_trace` is wrapped on that one object, so
whatever exports it — the user's handler, `tensorboard_trace_handler`, a direct call — writes the
block in front and `traceEvents` last (export.py says why last).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from traceparse.capture.export import METADATA_KEY, export_with_metadata
from traceparse.capture.metadata import distributed_info, model_metadata
from traceparse.capture.scopes import module_scopes

__all__ = ["attach_metadata", "module_scopes", "time_uninstrumented", "trace_handler"]
from traceparse.capture.timing import median_ms, synchronize

_ATTACHED = "_traceparse_metadata"  # the live block, on the profiler object


def attach_metadata(prof: Any, model: nn.Module, *, model_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Have every export of `prof` carry the `traceparse` block of `model`, plus `extra` keys
    (mode, seq_len, batch_size, timing={...}, anything JSON-able). Returns the block itself:
    changes made to it before the export (a timing measured later) are written.

    Calling it again on the same profiler replaces the block; the export stays wrapped once.
    """
    meta = model_metadata(model, model_id=model_id)
    meta.update(extra)
    live: dict[str, Any] | None = getattr(prof, _ATTACHED, None)
    if live is not None:
        live.clear()
        live.update(meta)
        return live
    original = prof.export_chrome_trace  # the bound method of this profiler

    def export_chrome_trace(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Path:
        keys = {METADATA_KEY: getattr(prof, _ATTACHED), **distributed_info()}
        return export_with_metadata(lambda tmp: original(tmp, *args, **kwargs), Path(path), keys)

    prof.export_chrome_trace = export_chrome_trace
    setattr(prof, _ATTACHED, meta)
    return meta


def trace_handler(
    dir_name: str | os.PathLike[str],
    model: nn.Module,
    *,
    worker_name: str | None = None,
    use_gzip: bool = True,
    **extra: Any,
) -> Callable[[Any], None]:
    """An `on_trace_ready` handler: torch's `tensorboard_trace_handler` (one file per cycle, in the
    layout TensorBoard's plugin reads) with the `traceparse` block of `model` in each file."""
    from torch.profiler import tensorboard_trace_handler

    write = tensorboard_trace_handler(str(dir_name), worker_name=worker_name, use_gzip=use_gzip)

    def handler(prof: Any) -> None:
        if getattr(prof, _ATTACHED, None) is None:
            attach_metadata(prof, model, **extra)
        write(prof)

    return handler


def time_uninstrumented(
    fn: Callable[[], object],
    *,
    runs: int = 7,
    warmup: int = 2,
    device: str | torch.device | None = None,
) -> float:
    """Median wall ms of `fn()` over `runs` calls after `warmup`: CUDA events on a GPU (no sync
    inside a run), perf_counter on the CPU. Call it outside the profiler and outside `scopes`, and
    pass the result as `timing={"forward_ms_uninstrumented": ...}` (a forward) or
    `{"step_ms_uninstrumented": ...}` (a train step): the report's effective TFLOP/s basis."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    dev = torch.device(device) if device is not None else _default_device()
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())

    def call() -> None:
        fn()

    synchronize(dev)
    return median_ms(call, dev, runs, warmup)


def _default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
