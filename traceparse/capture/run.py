"""The capture pipeline: build → time without profiler → profile with scopes → export."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch.profiler import ProfilerActivity, profile, schedule

from traceparse import __version__
from traceparse.capture.export import METADATA_KEY, export_trace
from traceparse.capture.model import BuiltModel, build_model
from traceparse.capture.options import CaptureOptions
from traceparse.capture.scopes import (
    find_block_container,
    linear_param_count,
    module_scopes,
    module_table,
    param_count,
)
from traceparse.capture.timing import median_ms, synchronize
from traceparse.capture.workload import make_workload
from traceparse.errors import ExitCode, TraceparseError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CaptureResult:
    trace_path: Path
    metadata: dict[str, Any]
    step_wall_ms: list[float]
    trace_bytes: int
    capture_s: float
    timings: dict[str, float] = field(default_factory=dict)


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def default_name(model_id: str, opts: CaptureOptions) -> str:
    rank, world = _rank()
    name = f"{_slug(Path(model_id).name if os.path.isdir(model_id) else model_id)}-{opts.mode}-seq{opts.seq_len}"
    return f"{name}-rank{rank}" if world > 1 else name


def _device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(device),
            "count": torch.cuda.device_count(),
        }
    return {"type": device.type, "name": platform.processor() or platform.machine(), "count": 1}


def _config_dict(built: BuiltModel) -> dict[str, Any]:
    config = built.model.config.to_dict()
    # Large per-token tables are no use to analyze and bloat every trace.
    config.pop("id2label", None)
    config.pop("label2id", None)
    return config


def _metadata(built: BuiltModel, opts: CaptureOptions, container: str | None) -> dict[str, Any]:
    rank, world = _rank()
    model = built.model
    return {
        "schema": "traceparse.capture/1",
        "traceparse_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "model_id": built.model_id,
        "model_class": type(model).__name__,
        "random_weights": built.random_weights,
        "config": _config_dict(built),
        "dtype": str(built.dtype).removeprefix("torch."),
        "mode": opts.mode,
        "seq_len": opts.seq_len,
        "batch_size": opts.batch_size,
        "new_tokens": opts.new_tokens if opts.mode == "generate" else None,
        "attn_impl": opts.attn_impl,
        "device": _device_info(built.device),
        "rank": rank,
        "world_size": world,
        "params": param_count(model),
        "params_linear": linear_param_count(model),
        "blocks_container": container,
        "scope_naming": "<qualified name> (<ClassName>); root: model (<ClassName>)",
        "scopes": opts.scopes,
        "modules": module_table(model, container),
        "warmup_steps": opts.warmup,
        "active_steps": opts.steps,
    }


def run_capture(opts: CaptureOptions, progress: Progress = lambda _msg: None) -> CaptureResult:
    opts.validate()
    t_start = time.perf_counter()
    progress("building model")
    built = build_model(opts)
    container = find_block_container(built.model)
    meta = _metadata(built, opts, container)
    work = make_workload(built, opts)
    runs = max(opts.timing_runs, 5) if built.device.type == "cuda" else opts.timing_runs

    try:
        progress(f"timing {runs} plain forwards (no profiler, no scopes)")
        timing: dict[str, Any] = {"forward_runs": runs}
        timing["forward_ms_uninstrumented"] = median_ms(work.forward, built.device, runs)
        with module_scopes(built.model):
            timing["forward_ms_scopes"] = median_ms(work.forward, built.device, runs)
        if opts.mode != "forward":
            progress(f"timing {opts.mode} steps (no profiler, no scopes)")
            timing["step_ms_uninstrumented"] = median_ms(work.step, built.device, max(3, runs // 2), 1)
        meta["timing"] = timing

        activities = [ProfilerActivity.CPU]
        if built.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        name = opts.name or default_name(built.model_id, opts)
        out_path = opts.out / f"{name}.pt.trace.json.gz"
        step_wall: list[float] = []
        exported: list[Path] = []

        extra: dict[str, Any] = {METADATA_KEY: meta}
        rank, world = _rank()
        if world > 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            # torch writes distributedInfo only for an initialised process group; under torchrun
            # capture profiles each rank on its own, so say which rank this is.
            extra["distributedInfo"] = {"rank": rank, "world_size": world, "backend": None}

        def on_ready(prof: profile) -> None:
            meta["timing"]["profiled_step_wall_ms"] = step_wall[opts.warmup :]
            exported.append(export_trace(prof, out_path, extra))

        scopes = module_scopes(built.model) if opts.scopes else contextlib.nullcontext()
        with (
            scopes,
            profile(
                activities=activities,
                record_shapes=True,
                with_stack=opts.with_stack,
                schedule=schedule(wait=0, warmup=opts.warmup, active=opts.steps, repeat=1),
                on_trace_ready=on_ready,
            ) as prof,
        ):
            for i in range(opts.warmup + opts.steps):
                label = "warm-up" if i < opts.warmup else "profiled"
                progress(f"step {i + 1}/{opts.warmup + opts.steps} ({label})")
                t0 = time.perf_counter()
                work.step()
                synchronize(built.device)
                step_wall.append((time.perf_counter() - t0) * 1e3)
                prof.step()
    except torch.OutOfMemoryError:
        raise TraceparseError(
            f"out of device memory running {built.model_id} at batch {opts.batch_size} x seq {opts.seq_len}",
            ExitCode.RUNTIME,
        ) from None
    if not exported:
        raise TraceparseError("the profiler produced no trace", ExitCode.RUNTIME)
    path = exported[0]
    return CaptureResult(
        trace_path=path,
        metadata=meta,
        step_wall_ms=step_wall[opts.warmup :],
        trace_bytes=path.stat().st_size,
        capture_s=time.perf_counter() - t_start,
    )
