"""What the user asked `capture` to do, validated before any model is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from traceparse.errors import UsageError

Mode = Literal["forward", "train", "generate"]
MODES: tuple[Mode, ...] = ("forward", "train", "generate")
DTYPES = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class CaptureOptions:
    model: str | None = None  # Hub id or local checkpoint dir
    preset: str | None = None
    config: Path | None = None
    random_weights: bool = False
    seq_len: int = 215
    batch_size: int = 1
    dtype: str | None = None  # None: bf16 on CUDA, fp32 on CPU
    device: str | None = None  # None: cuda if available
    attn_impl: str = "sdpa"
    warmup: int = 1
    steps: int = 3
    mode: Mode = "forward"
    new_tokens: int = 16
    out: Path = Path("traces")
    name: str | None = None
    timing_runs: int = 7
    layers: int | None = None  # keep widths, cut the model to its first N blocks
    with_stack: bool = False
    scopes: bool = True
    compile: str | None = None  # torch.compile mode: default | max-autotune | reduce-overhead
    compile_scope: str = "blocks"  # blocks (regional) | model
    cuda_graphs: bool = False
    tp: int | None = None  # tensor parallel over the torchrun job's ranks (transformers' tp_plan)
    parallel: str | None = None  # "ddp" | "fsdp" for --mode train under torchrun

    def validate(self) -> CaptureOptions:
        sources = [s for s in (self.model, self.preset, self.config) if s]
        if len(sources) != 1:
            raise UsageError("give exactly one model source: MODEL (Hub id or dir), --preset or --config")
        if self.seq_len < 1:
            raise UsageError(f"--seq-len must be at least 1, got {self.seq_len}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.steps}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "generate" and self.new_tokens < 2:
            raise UsageError(f"--new-tokens must be at least 2 for generate, got {self.new_tokens}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.layers is not None and self.layers < 1:
            raise UsageError(f"--layers must be at least 1, got {self.layers}")
        if self.timing_runs < 1:
            raise UsageError("--timing-runs must be at least 1")
        self.validate_parallel()
        self._validate_compile()
        return self

    def _validate_compile(self) -> None:
        from traceparse.capture.modes import COMPILE_MODES, COMPILE_SCOPES

        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise UsageError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.compile_scope not in COMPILE_SCOPES:
            raise UsageError(f"--compile-scope must be one of {', '.join(COMPILE_SCOPES)}, got {self.compile_scope!r}")
        if self.cuda_graphs and self.mode == "train":
            raise UsageError("--cuda-graphs works with --mode forward or generate")
        if self.cuda_graphs and self.compile == "reduce-overhead":
            raise UsageError(
                "--cuda-graphs with --compile reduce-overhead: that mode already replays CUDA graphs; "
                "use --compile default --cuda-graphs for graphs whose kernels analyze can match to modules"
            )

    def validate_parallel(self) -> None:
        """--tp and --parallel (the torchrun checks come when the process group starts)."""
        if self.tp is not None and self.tp < 1:
            raise UsageError(f"--tp must be at least 1, got {self.tp}")
        if self.parallel is not None and self.parallel not in ("ddp", "fsdp"):
            raise UsageError(f"--parallel must be ddp or fsdp, got {self.parallel!r}")
        if self.parallel and self.tp is not None and self.tp > 1:
            raise UsageError("--tp and --parallel are one or the other (no 2-D mesh)")
        if self.parallel and self.mode != "train":
            raise UsageError(f"--parallel {self.parallel} shards or reduces gradients: it needs --mode train")
