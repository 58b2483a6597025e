"""The report: frozen rows computed once, rendered many ways. The JSON form is a contract.

Schema "traceparse.report/1" — all times are milliseconds per profiler step (averaged over the
steps found; counts likewise per step); FLOPs are per step; unknown values are null, never 0.
Adding fields is compatible; renaming or removing one bumps the schema version.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by the DataFrame views only: it costs ~0.3 s at startup
    import pandas as pd

SCHEMA = "traceparse.report/1"


@dataclass(frozen=True)
class General:
    model: str | None
    model_class: str | None
    device: str | None
    steps: int
    hidden_size: int | None
    seq_len: int | None
    batch_size: int | None
    num_blocks: int
    params: int | None  # all parameters (metadata)
    params_linear: int | None  # weights and biases of nn.Linear modules only
    kernel_ms: float  # sum of GPU item durations (CPU op self time in a CPU-only trace)
    gpu_busy_ms: float | None  # union of GPU item intervals
    wall_ms: float | None  # ProfilerStep duration (trace span when no steps)
    wall_ms_min: float | None
    wall_ms_max: float | None
    forward_ms_profiled: float | None  # root module call, CPU wall, under the profiler
    forward_ms_uninstrumented: float | None  # metadata: no profiler, no scopes (median)
    forward_ms_scopes: float | None  # metadata: scopes on, no profiler
    step_ms_uninstrumented: float | None  # metadata: train/generate step, no profiler
    gpu_idle_pct: float | None
    flops: float | None  # tensor FLOPs (GEMM, attention, conv, analytic SSM) per step
    flops_elementwise: float | None
    flops_analytic: float | None  # the part of `flops` that is analytic (module formulas)
    effective_tflops: float | None  # flops / uninstrumented time (else profiled wall)
    effective_basis: str | None  # which time effective_tflops divides by
    kernel_tflops: float | None  # flops / kernel_ms
    mfu: float | None  # effective_tflops / peak
    peak_tflops: float | None
    dtype: str | None
    flop_coverage: float | None  # share of kernel time whose FLOPs are known
    attention_flops: str  # "causal" or "full"
    mode: str | None  # forward | train | generate (metadata), else inferred
    unattributed_ms: float
    gpu_span_ms: float | None = None  # first GPU item start to last end, per step (mean)
    flops_counted: float | None = None  # FLOPs of the ops with shapes: a lower bound when `flops` is null
    attention_backward: float = 2.5  # attention backward FLOPs as a multiple of forward
    # kernel_ms split by what the GPU items are (null in a CPU-only trace)
    kernels_only_ms: float | None = None
    memcpy_ms: float | None = None
    memset_ms: float | None = None
    peak_tbps: float | None = None  # memory bandwidth of the device (--peak-tbps, else the table)
    rank: int | None = None  # of a distributed job: distributedInfo, else the capture metadata
    world_size: int | None = None


@dataclass(frozen=True)
class StepRow:
    """One profiler step (a trace without steps is one)."""

    number: int | None  # N of ProfilerStep#N
    wall_ms: float  # CPU span of the step
    kernel_ms: float  # GPU items counted in it (CPU self time in a CPU-only trace)
    gpu_busy_ms: float | None
    gpu_span_ms: float | None
    items: int


@dataclass(frozen=True)
class BlockRow:
    index: int
    name: str
    kind: str
    gpu_ms: float  # inclusive, all phases
    self_ms: float
    forward_ms: float
    backward_ms: float
    share_pct: float
    flops: float | None
    tflops: float | None
    mfu: float | None
    flop_coverage: float | None
    params: int | None
    # Roofline (flops/roofline.py): compulsory bytes of the block's ops, per step; null when more
    # than 2 % of its kernel time ran in ops whose bytes are unknown (bytes_coverage says how much).
    bytes: float | None = None
    tbps: float | None = None  # bytes / gpu_ms
    intensity: float | None = None  # flops / bytes
    bound: str | None = None  # "memory" | "compute"
    roofline_pct: float | None = None  # achieved / attainable at this intensity (%)
    bytes_coverage: float | None = None  # share of the block's kernel time whose bytes are known


@dataclass(frozen=True)
class TypeRow:
    type: str
    count: float  # calls per step
    total_ms: float  # inclusive
    mean_ms: float
    self_ms: float
    self_share_pct: float
    # Roofline of the type's calls, inclusive (as BlockRow's); flops: tensor FLOPs incl. analytic
    flops: float | None = None
    bytes: float | None = None
    tflops: float | None = None
    tbps: float | None = None
    intensity: float | None = None
    bound: str | None = None
    roofline_pct: float | None = None


@dataclass(frozen=True)
class ModuleRow:
    name: str
    type: str
    self_ms: float
    inclusive_ms: float
    calls: float  # per step
    block: int | None


@dataclass(frozen=True)
class FamilyRow:
    family: str
    kernel_ms: float
    count: float  # per step
    share_pct: float
    by_block_kind: dict[str, float] = field(default_factory=dict)  # ms per step


@dataclass(frozen=True)
class PhaseRow:
    phase: str
    kernel_ms: float
    flops: float | None
    unattributed_ms: float
    blocks: list[dict[str, Any]] = field(default_factory=list)  # index, gpu_ms, flops


@dataclass(frozen=True)
class Report:
    source: str
    general: General
    blocks: list[BlockRow]
    module_types: list[TypeRow]
    slowest_modules: list[ModuleRow]
    kernel_families: list[FamilyRow]
    phases: list[PhaseRow]
    attribution: str  # scopes | with_stack | operators | cpu
    notes: list[str]
    step_wall_ms: list[float]
    generation: dict[str, Any] | None = None
    top_operators: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    block_stacks: list[dict[str, Any]] = field(default_factory=list)  # container, blocks, kinds, gpu_ms, share_pct
    # operator, calls, gpu_ms, mean/min/max/std_ms, kernels, flops, bytes, tflops, tbps, intensity, bound,
    # roofline_pct (sections/roofline_ops.py); operator_shapes: the same per distinct shape, plus `shapes`
    operators: list[dict[str, Any]] = field(default_factory=list)
    operator_shapes: list[dict[str, Any]] = field(default_factory=list)
    # kernel, family, count (per step), total_ms (per step), mean/min/max_ms (one launch), share_pct
    # (sections/kernels.py): the --top N kernels by name
    top_kernels: list[dict[str, Any]] = field(default_factory=list)
    # source, kernels, kernel_ms, to_module_ms, matched_pct, fused_ms, share_pct (sections/recovered.py):
    # modules recovered under compile / CUDA graphs; fusions: kernel, modules, given_to, count, total_ms
    recovered: list[dict[str, Any]] = field(default_factory=list)
    fusions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "source": self.source}
        out["general"] = asdict(self.general)
        out["blocks"] = [asdict(b) for b in self.blocks]
        out["module_types"] = [asdict(t) for t in self.module_types]
        out["slowest_modules"] = [asdict(m) for m in self.slowest_modules]
        out["kernel_families"] = [asdict(f) for f in self.kernel_families]
        out["phases"] = [asdict(p) for p in self.phases]
        out["unattributed_ms"] = self.general.unattributed_ms
        out["attribution"] = self.attribution
        out["notes"] = list(self.notes)
        out["step_wall_ms"] = list(self.step_wall_ms)
        out["generation"] = self.generation
        out["top_operators"] = list(self.top_operators)
        out["steps"] = [asdict(s) for s in self.steps]
        out["block_stacks"] = list(self.block_stacks)
        out["operators"] = list(self.operators)
        out["operator_shapes"] = list(self.operator_shapes)
        out["top_kernels"] = list(self.top_kernels)
        out["recovered"] = list(self.recovered)
        out["fusions"] = list(self.fusions)
        return out

    # The rendered forms, for the Python API (the CLI's -f markdown, --html, --charts).
    def to_markdown(self, lang: str = "en") -> str:
        from traceparse.render import render

        return render(self, "markdown", lang)

    def to_html(self, lang: str = "en", charts: bool = True) -> str:
        """One self-contained HTML page (charts inline when matplotlib is installed)."""
        from traceparse.render.html import render_html

        return render_html(self, lang=lang, charts=charts)

    def charts(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the report's PNG charts into `directory`; returns their paths."""
        from traceparse.render.charts import write_charts

        return write_charts(self, Path(directory))

    # DataFrame views for the Python API.
    @property
    def blocks_df(self) -> pd.DataFrame:
        return _frame([asdict(b) for b in self.blocks])

    @property
    def module_types_df(self) -> pd.DataFrame:
        return _frame([asdict(t) for t in self.module_types])

    @property
    def slowest_modules_df(self) -> pd.DataFrame:
        return _frame([asdict(m) for m in self.slowest_modules])

    @property
    def kernel_families_df(self) -> pd.DataFrame:
        return _frame([{k: v for k, v in asdict(f).items() if k != "by_block_kind"} for f in self.kernel_families])

    @property
    def phases_df(self) -> pd.DataFrame:
        return _frame([{k: v for k, v in asdict(p).items() if k != "blocks"} for p in self.phases])

    @property
    def steps_df(self) -> pd.DataFrame:
        return _frame([asdict(s) for s in self.steps])

    @property
    def top_kernels_df(self) -> pd.DataFrame:
        return _frame(list(self.top_kernels))


# Count-like columns: integers (nullable Int64) when every value is whole (per-step averages of
# counts usually are; a fractional one keeps the column float).
_COUNT_COLUMNS = ("count", "calls", "items", "index", "params", "number", "block")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in _COUNT_COLUMNS:
        if c in df.columns:
            v = pd.to_numeric(df[c], errors="coerce")
            known = v.dropna()
            if len(known) == len(df[c].dropna()) and (known == known.round()).all():
                df[c] = v.astype("Int64")
    return df
