"""The capture pipeline: build → time without profiler → profile with scopes → export."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from traceparse.capture.export import METADATA_KEY, export_trace
from traceparse.capture.metadata import distributed_info, model_metadata, trace_stem
from traceparse.capture.model import BuiltModel, build_model
from traceparse.capture.options import CaptureOptions
from traceparse.capture.parallel import name_suffix
from traceparse.capture.scopes import module_scopes
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


def default_name(model_id: str, opts: CaptureOptions) -> str:
    return trace_stem(model_id, opts.mode, opts.seq_len, name_suffix(opts))


def _metadata(built: BuiltModel, opts: CaptureOptions) -> dict[str, Any]:
    return {
        **model_metadata(built.model, model_id=built.model_id, dtype=built.dtype, device=built.device),
        "random_weights": built.random_weights,
        "mode": opts.mode,
        "seq_len": opts.seq_len,
        "batch_size": opts.batch_size,
        "new_tokens": opts.new_tokens if opts.mode == "generate" else None,
        "attn_impl": opts.attn_impl,
        "scopes": opts.scopes,
        "compile": None,
        "cuda_graphs": None,
        "warmup_steps": opts.warmup,
        "active_steps": opts.steps,
        "parallel": built.parallel.metadata() if built.parallel is not None else None,
    }


def _prepare_compile(built: BuiltModel, opts: CaptureOptions, meta: dict[str, Any], stack: contextlib.ExitStack) -> Any:
    """Compile the chosen regions through the provenance-recording backend; returns `skip` for
    the scopes (no hooks inside compiled regions) or None without --compile."""
    if not opts.compile:
        return None
    from traceparse.capture.compiled import (
        ProvenanceRecorder,
        apply_compile,
        compiled_regions,
        inductor_settings,
        inside_regions,
    )

    regions = compiled_regions(built.model, opts.compile_scope, meta.get("blocks_container"))
    recorder = ProvenanceRecorder(opts.compile)
    stack.enter_context(inductor_settings())
    apply_compile(built.model, regions, recorder)
    meta["compile"] = {
        "mode": opts.compile,
        "scope": opts.compile_scope,
        "regions": len(regions),
        "torch": torch.__version__,
        # Filled as graphs compile (the same list objects end up in the exported metadata).
        "modules": recorder.modules,
        "graphs": recorder.graphs,
    }
    return inside_regions(regions)


def _warm(meta: dict[str, Any], device: torch.device) -> Callable[[list[Callable[[], None]]], None]:
    """Compile everything before timing: warm-up until a round compiles nothing new."""

    def warm(fns: list[Callable[[], None]]) -> None:
        if meta.get("compile") is None:
            return
        from traceparse.capture.compiled import warm_until_stable

        meta["compile"].setdefault("warmup", []).append(warm_until_stable(fns, device))

    return warm


def run_capture(opts: CaptureOptions, progress: Progress = lambda _msg: None) -> CaptureResult:
    opts.validate()
    t_start = time.perf_counter()
    progress("building model")
    built = build_model(opts)
    meta = _metadata(built, opts)
    stack = contextlib.ExitStack()
    with stack:
        skip = _prepare_compile(built, opts, meta, stack)
        warm = _warm(meta, built.device)
        if opts.compile:
            progress(f"compiling ({opts.compile}, scope {opts.compile_scope}) until nothing recompiles")
        reference: Callable[[], None] | None = None
        reference_setup: Callable[[], None] = lambda: None  # noqa: E731
        if opts.cuda_graphs:
            from traceparse.capture.graphs import REFERENCE_SCOPE, graph_workload

            progress("capturing the CUDA graph")
            graphs = graph_workload(built, opts, warm)
            meta["cuda_graphs"] = {**graphs.info, "reference_scope": REFERENCE_SCOPE}
            work_step, work_forward = graphs.step, graphs.forward
            reference, reference_setup = graphs.reference, graphs.reference_setup
        else:
            work = make_workload(built, opts)
            warm([work.step, work.forward])
            work_step, work_forward = work.step, work.forward
        return _profile(opts, built, meta, skip, work_step, work_forward, reference, reference_setup, progress, t_start)


def _profile(
    opts: CaptureOptions,
    built: BuiltModel,
    meta: dict[str, Any],
    skip: Any,
    work_step: Callable[[], None],
    work_forward: Callable[[], None],
    reference: Callable[[], None] | None,
    reference_setup: Callable[[], None],
    progress: Progress,
    t_start: float,
) -> CaptureResult:
    runs = max(opts.timing_runs, 5) if built.device.type == "cuda" else opts.timing_runs
    try:
        progress(f"timing {runs} plain forwards (no profiler, no scopes)")
        timing: dict[str, Any] = {"forward_runs": runs}
        timing["forward_ms_uninstrumented"] = median_ms(work_forward, built.device, runs)
        with module_scopes(built.model, skip):
            timing["forward_ms_scopes"] = median_ms(work_forward, built.device, runs)
        if opts.mode != "forward":
            progress(f"timing {opts.mode} steps (no profiler, no scopes)")
            timing["step_ms_uninstrumented"] = median_ms(work_step, built.device, max(3, runs // 2), 1)
        elif opts.cuda_graphs:
            timing["step_ms_uninstrumented"] = timing["forward_ms_uninstrumented"]
        meta["timing"] = timing

        activities = [ProfilerActivity.CPU]
        if built.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        name = opts.name or default_name(built.model_id, opts)
        out_path = opts.out / f"{name}.pt.trace.json.gz"
        step_wall: list[float] = []
        exported: list[Path] = []
        # The reference pass (--cuda-graphs) is the first active step; analyze leaves it out.
        extra_steps = 1 if reference is not None else 0

        # Under torchrun capture profiles each rank on its own (no process group): say which.
        extra: dict[str, Any] = {METADATA_KEY: meta, **distributed_info()}

        def on_ready(prof: profile) -> None:
            meta["timing"]["profiled_step_wall_ms"] = step_wall[opts.warmup :]
            exported.append(export_trace(prof, out_path, extra))

        scopes = module_scopes(built.model, skip) if opts.scopes else contextlib.nullcontext()
        with (
            scopes,
            profile(
                activities=activities,
                record_shapes=True,
                with_stack=opts.with_stack,
                schedule=schedule(wait=0, warmup=opts.warmup, active=opts.steps + extra_steps, repeat=1),
                on_trace_ready=on_ready,
            ) as prof,
        ):
            for i in range(opts.warmup + opts.steps + extra_steps):
                if reference is not None and i == opts.warmup:
                    progress("reference pass (un-graphed, for matching the replays)")
                    _run_reference(reference, reference_setup, built.device)
                    prof.step()
                    continue
                label = "warm-up" if i < opts.warmup else "profiled"
                progress(f"step {i + 1}/{opts.warmup + opts.steps + extra_steps} ({label})")
                t0 = time.perf_counter()
                work_step()
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


def _run_reference(reference: Callable[[], None], setup: Callable[[], None], device: torch.device) -> None:
    from torch.autograd.profiler import record_function

    from traceparse.capture.graphs import REFERENCE_SCOPE

    setup()
    with record_function(REFERENCE_SCOPE):
        reference()
    synchronize(device)
