"""`TraceparseCallback`: profile optimizer steps N..M of a transformers `Trainer` run.

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[TraceparseCallback(steps=(6, 8))])

The same trace `traceparse capture --mode train` writes, from the real training run: the naming
contract's scopes around every module call while profiling (not before: the steps timed plain
must run without them), `ProfilerStep#N` per optimizer step (gradient accumulation's micro-batches
stay inside one), and the `traceparse` metadata block. Each rank writes its own file
(`…-rank<R>.pt.trace.json.gz`); at the end of training the report is printed (rank 0) or saved.

Step numbers are the Trainer's `global_step` after the step: step 1 is the first optimizer step.
Before the window, up to `timed_steps` steps (never step 1, which pays for allocation and
autotuning) run without profiler or scopes, bracketed by device synchronisations: their median is
`step_ms_uninstrumented`, the report's basis for effective TFLOP/s.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule
from transformers import TrainerCallback

from traceparse.capture.export import METADATA_KEY, export_trace
from traceparse.capture.metadata import default_model_id, distributed_info, model_metadata, rank_world, trace_stem
from traceparse.capture.scopes import module_scopes

_REPORT_FORMATS = {".md": "markdown", ".json": "json", ".csv": "csv", ".txt": "table"}


class TraceparseCallback(TrainerCallback):
    """Profile optimizer steps `steps=(N, M)` (inclusive) after `warmup` profiler warm-up steps.

    out: the traces' folder (default `<output_dir>/traceparse`); name: the file stem (default
    `<model>-train-seq<N>[-rank<R>]`); report: True prints the report on rank 0 at the end of
    training, False prints nothing, a path (.md, .json, .csv, .txt) saves it there on every rank
    (`-rank<R>` added in a job of several). After training: `trace_path`, `report`.
    """

    def __init__(
        self,
        steps: tuple[int, int] = (6, 8),
        *,
        warmup: int = 1,
        timed_steps: int = 3,
        out: str | os.PathLike[str] | None = None,
        name: str | None = None,
        model_id: str | None = None,
        report: bool | str | os.PathLike[str] = True,
        record_shapes: bool = True,
        with_stack: bool = False,
    ) -> None:
        start, stop = steps
        if start < 1 or stop < start:
            raise ValueError(f"steps must be (N, M) with 1 <= N <= M, got {steps}")
        if warmup < 0 or start - warmup < 1:
            raise ValueError(f"warmup={warmup} does not fit before step {start}: use at most {start - 1}")
        if timed_steps < 0:
            raise ValueError(f"timed_steps must be 0 or more, got {timed_steps}")
        self.start, self.stop, self.warmup = start, stop, warmup
        self.first = start - warmup  # the first step the profiler sees
        self.timed = range(max(2, self.first - timed_steps), self.first)
        self.out = Path(out) if out is not None else None
        self.name, self.model_id = name, model_id
        self.report_to = report
        self.record_shapes, self.with_stack = record_shapes, with_stack
        self.trace_path: Path | None = None
        self.report: Any = None  # traceparse.report.Report once training ends
        self._model: torch.nn.Module | None = None
        self._prof: Any = None
        self._stack = contextlib.ExitStack()
        self._t0 = 0.0
        self._plain_ms: list[float] = []
        self._profiled_ms: list[float] = []
        self._shapes: list[tuple[int, ...]] = []
        self._hook: Any = None
        self._args: Any = None

    # ---- the Trainer's events -------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._model, self._args = model, args
        if model is not None:
            # The micro-batch's shape, from the root call: the metadata's seq_len and batch_size.
            self._hook = model.register_forward_pre_hook(self._record_shape, with_kwargs=True)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step + 1
        if step == self.first and self._model is not None and self._prof is None:
            self._start_profiler()
        if step in self.timed or self._prof is not None:
            self._sync()
            self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if step not in self.timed and self._prof is None:
            return
        self._sync()
        wall = (time.perf_counter() - self._t0) * 1e3
        if self._prof is None:
            self._plain_ms.append(wall)
            return
        if step >= self.start:
            self._profiled_ms.append(wall)
        self._prof.step()  # after the last active step this exports (on_trace_ready)
        if step >= self.stop:
            self._stop_profiler()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._prof is not None:  # training ended inside the window: keep the steps recorded so far
            self._stop_profiler()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.trace_path is None:
            warnings.warn(
                f"traceparse: training ended at step {state.global_step}, before profiled step {self.start}: "
                "no trace written",
                stacklevel=2,
            )
            return
        self._report(state)

    # ---- profiling ------------------------------------------------------------------------------

    def _record_shape(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor) and (self._prof is not None or not self._shapes):
            self._shapes.append(tuple(ids.shape))

    def _device(self) -> torch.device:
        first = next(self._model.parameters(), None) if self._model is not None else None
        return first.device if first is not None else torch.device("cpu")

    def _sync(self) -> None:
        device = self._device()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def _start_profiler(self) -> None:
        assert self._model is not None
        activities = [ProfilerActivity.CPU]
        if self._device().type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._shapes.clear()
        self._stack.enter_context(module_scopes(self._model))
        self._prof = profile(
            activities=activities,
            record_shapes=self.record_shapes,
            with_stack=self.with_stack,
            schedule=schedule(wait=0, warmup=self.warmup, active=self.stop - self.start + 1, repeat=1),
            on_trace_ready=self._export,
        )
        self._prof.start()

    def _stop_profiler(self) -> None:
        prof, self._prof = self._prof, None
        try:
            prof.stop()
        finally:
            self._stack.close()

    def _metadata(self) -> dict[str, Any]:
        assert self._model is not None
        args = self._args
        seq_len, batch = None, None
        if self._shapes and len(set(self._shapes)) == 1 and len(self._shapes[0]) == 2:
            batch, seq_len = self._shapes[0]
        plain = self._plain_ms
        timing: dict[str, Any] = {
            "step_ms_uninstrumented": statistics.median(plain) if plain else None,
            "plain_step_wall_ms": plain,
            "profiled_step_wall_ms": self._profiled_ms,
        }
        return {
            **model_metadata(self._model, model_id=self.model_id),
            "mode": "train",
            "seq_len": seq_len,
            "batch_size": batch,
            # Sequences of different lengths (no padding to a fixed length): each shape seen.
            "input_shapes": [list(shape) for shape in sorted(set(self._shapes))],
            "scopes": True,
            "warmup_steps": self.warmup,
            "active_steps": self.stop - self.start + 1,
            "timing": timing,
            "trainer": {
                "steps": [self.start, self.stop],
                "gradient_accumulation_steps": getattr(args, "gradient_accumulation_steps", None),
                "per_device_train_batch_size": getattr(args, "per_device_train_batch_size", None),
                "bf16": getattr(args, "bf16", None),
                "fp16": getattr(args, "fp16", None),
                "optim": str(getattr(getattr(args, "optim", None), "value", getattr(args, "optim", None))),
                "gradient_checkpointing": getattr(args, "gradient_checkpointing", None),
            },
        }

    def _export(self, prof: Any) -> None:
        assert self._model is not None
        meta = self._metadata()
        out = self.out or Path(getattr(self._args, "output_dir", None) or ".") / "traceparse"
        out.mkdir(parents=True, exist_ok=True)
        stem = self.name or trace_stem(self.model_id or default_model_id(self._model), "train", meta["seq_len"])
        self.trace_path = export_trace(
            prof, out / f"{stem}.pt.trace.json.gz", {METADATA_KEY: meta, **distributed_info()}
        )

    # ---- the report -----------------------------------------------------------------------------

    def _report(self, state: Any) -> None:
        if self.report_to is False or self.trace_path is None:
            return
        to_file = self.report_to is not True
        if not to_file and not state.is_world_process_zero:
            return
        try:
            from traceparse.api import analyze_path
            from traceparse.render import render

            self.report = analyze_path(self.trace_path)
            if not to_file:
                print(f"traceparse: {self.trace_path}\n{render(self.report, 'table')}")
                return
            path = Path(self.report_to)  # type: ignore[arg-type]  # not a bool here
            rank, world = rank_world()
            if world > 1:
                path = path.with_name(f"{path.stem}-rank{rank}{path.suffix}")
            path.write_text(render(self.report, _REPORT_FORMATS.get(path.suffix, "markdown")), encoding="utf-8")
        except Exception as exc:  # a report must not fail the training run that made it
            warnings.warn(
                f"traceparse: the trace was saved at {self.trace_path}, but its report failed: {exc}", stacklevel=2
            )
