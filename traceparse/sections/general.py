"""General parameters: the model, the device, the step's times, FLOPs, TFLOP/s and MFU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.attribute import Attribution
from traceparse.flops.formulas import EMBEDDING
from traceparse.load import KERNEL, MEMCPY, MEMSET
from traceparse.rates import union_us
from traceparse.report import General, Report
from traceparse.scopes import BACKWARD, FORWARD, OTHER_PHASE
from traceparse.sections.base import Column, SectionSpec, TableSpec, integer, kv_value, ms, num
from traceparse.sections.context import Context


def compute(ctx: Context, done: Mapping[str, Any]) -> General:
    meta, attr, flops, items, n_steps = ctx.meta, ctx.attr, ctx.flops, ctx.attr.items, ctx.n_steps
    config: dict[str, Any] = meta.get("config") or {}
    calls, ev, in_steps, has_shapes = attr.calls, attr.index.events, ctx.in_steps, ctx.has_shapes
    flops_in_steps = flops.step >= 0
    ew_flops = float(flops.flops[(flops.kind == 4) & flops_in_steps].sum()) / n_steps  # 4: elementwise
    analytic_flops = float(flops.flops[flops.analytic & flops_in_steps].sum()) / n_steps
    kernel_us = ctx.kernel_us
    coverage = float(items.dur[in_steps & flops.item_covered].sum()) / n_steps / kernel_us if kernel_us else None
    # Unattributed: work of forward/backward/other phases outside any module. Loss and
    # optimizer work has its own section, so it is attributed there, not lost.
    unattr_sel = in_steps & (items.call < 0) & np.isin(items.phase, [FORWARD, BACKWARD, OTHER_PHASE])
    walls, busy_ms, span_ms = ctx.walls, ctx.busy_ms, ctx.span_ms
    wall_ms = float(np.mean(walls))
    roots = np.flatnonzero((calls.parent < 0) & ctx.call_in_steps)
    # The union, not the sum: with_stack traces can nest Python frames so that roots overlap.
    fwd_profiled = ms(union_us(calls.start[roots], calls.end[roots]) / n_steps) if roots.size else None
    timing = meta.get("timing") or {}
    rank, world_size = _rank(ctx.trace.distributed_info, meta)
    rates = ctx.rates
    steps = attr.index.steps
    return General(
        model=meta.get("model_id"),
        model_class=meta.get("model_class"),
        device=ctx.device,
        steps=len(steps) if steps else 1,
        hidden_size=_int_or_none(config.get("hidden_size")) or _hidden_from_trace(attr),
        seq_len=_int_or_none(meta.get("seq_len")),
        batch_size=_int_or_none(meta.get("batch_size")),
        num_blocks=len(done["blocks"]),
        params=_int_or_none(meta.get("params")),
        params_linear=_int_or_none(meta.get("params_linear")),
        kernel_ms=ms(kernel_us),
        gpu_busy_ms=busy_ms,
        wall_ms=wall_ms,
        wall_ms_min=float(min(walls)),
        wall_ms_max=float(max(walls)),
        forward_ms_profiled=fwd_profiled,
        forward_ms_uninstrumented=timing.get("forward_ms_uninstrumented"),
        forward_ms_scopes=timing.get("forward_ms_scopes"),
        step_ms_uninstrumented=timing.get("step_ms_uninstrumented"),
        # Idle within the window the step occupied the GPU: its CPU span, or longer when the GPU lags.
        gpu_idle_pct=100.0 * (1.0 - busy_ms / max(wall_ms, span_ms or 0.0))
        if busy_ms is not None and max(wall_ms, span_ms or 0.0) > 0
        else None,
        flops=rates.flops,
        flops_elementwise=ew_flops if has_shapes else None,
        flops_analytic=analytic_flops if has_shapes else None,
        effective_tflops=rates.effective_tflops,
        effective_basis=rates.effective_basis,
        kernel_tflops=rates.kernel_tflops,
        mfu=rates.mfu,
        peak_tflops=ctx.peak,
        dtype=flops.dtype,
        flop_coverage=coverage if has_shapes else 0.0,
        attention_flops=flops.convention,
        mode=ctx.mode,
        unattributed_ms=ms(float(items.dur[unattr_sel].sum()) / n_steps),
        gpu_span_ms=rates.gpu_span_ms,
        flops_counted=rates.flops_counted,
        attention_backward=flops.attention_backward,
        peak_tbps=ctx.peak_tbps if ctx.gpu else None,
        rank=rank,
        world_size=world_size,
        **_split_by_kind(ev.kind[items.event_row], items.dur, in_steps, n_steps, ctx.gpu),
    )


def _rank(dist: dict[str, Any], meta: dict[str, Any]) -> tuple[int | None, int | None]:
    """Rank and world size of a distributed job's trace (Kineto's distributedInfo, else capture's)."""
    for source in (dist, meta):
        rank = _int_or_none(source.get("rank"))
        if rank is not None:
            return rank, _int_or_none(source.get("world_size"))
    return None, None


def _split_by_kind(
    kind: np.ndarray, dur: np.ndarray, in_steps: np.ndarray, n_steps: int, gpu: bool
) -> dict[str, float | None]:
    """GPU time per step of kernels, memcpys and memsets apart (what a viewer's "Kernel" sums)."""
    out: dict[str, float | None] = {}
    for key, k in (("kernels_only_ms", KERNEL), ("memcpy_ms", MEMCPY), ("memset_ms", MEMSET)):
        out[key] = ms(float(dur[in_steps & (kind == k)].sum()) / n_steps) if gpu else None
    return out


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _hidden_from_trace(attr: Attribution) -> int | None:
    """The hidden size from the embedding's input shapes, when the metadata has no model config."""
    ev = attr.index.events
    ids = [i for i, n in enumerate(ev.names) if n == EMBEDDING]
    if not ids:
        return None
    import msgspec

    for code in ev.shape[np.isin(ev.name, ids) & (ev.shape >= 0)].tolist():
        try:
            dims = msgspec.json.decode(ev.shapes[code].dims)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        first = dims[0] if isinstance(dims, list) and dims else None
        if isinstance(first, list) and len(first) == 2 and type(first[1]) is int and first[1] > 0:
            return first[1]
    return None


def _rows(r: Report, _lang: str) -> list[tuple[str, Any]]:
    """(i18n key, value) pairs; a value is a function of the unknown word (or text)."""
    g = r.general
    gf = None if g.flops is None else g.flops / 1e9
    rows: list[tuple[str, Any]] = [
        ("model", lambda u: f"{g.model} ({g.model_class})" if g.model_class and g.model else g.model or u),
        ("device", lambda u: g.device or u),
        *([("rank", f"{g.rank} of {g.world_size or '?'}")] if g.rank is not None and g.world_size != 1 else []),
        ("steps", str(g.steps)),
        ("hidden_size", lambda u: integer(g.hidden_size, u)),
        ("seq_len", lambda u: integer(g.seq_len, u)),
        ("batch_size", lambda u: integer(g.batch_size, u)),
        ("num_blocks", lambda u: integer(g.num_blocks or None, u)),  # 0: none found, unknown
        ("params", lambda u: integer(g.params, u)),
        ("params_linear", lambda u: integer(g.params_linear, u)),
        ("kernel_ms", f"{g.kernel_ms:.3f} ms"),
    ]
    if g.kernels_only_ms is not None and g.memcpy_ms is not None and g.memset_ms is not None:
        rows.append(("kernel_split", f"{g.kernels_only_ms:.3f} / {g.memcpy_ms:.3f} / {g.memset_ms:.3f} ms"))
    cpu = r.attribution == "cpu"  # no GPU: its busy time, span and idle share are not shown
    if not cpu:
        rows += [
            ("gpu_busy_ms", lambda u: num(g.gpu_busy_ms, "{:.3f} ms", u)),
            ("gpu_span_ms", lambda u: num(g.gpu_span_ms, "{:.3f} ms", u)),
        ]
    rows += [
        (
            "wall_ms",
            lambda u: (
                f"{num(g.wall_ms, '{:.3f}', u)} ms ({num(g.wall_ms_min, '{:.3f}', u)}–"
                f"{num(g.wall_ms_max, '{:.3f}', u)})"
            ),
        ),
        ("forward_ms_profiled", lambda u: num(g.forward_ms_profiled, "{:.3f} ms", u)),
        ("forward_ms_uninstrumented", lambda u: num(g.forward_ms_uninstrumented, "{:.3f} ms", u)),
        ("forward_ms_scopes", lambda u: num(g.forward_ms_scopes, "{:.3f} ms", u)),
        ("step_ms_uninstrumented", lambda u: num(g.step_ms_uninstrumented, "{:.3f} ms", u)),
        *([] if cpu else [("gpu_idle_pct", lambda u: num(g.gpu_idle_pct, "{:.1f} %", u))]),
        ("flops", lambda u: num(gf, "{:.2f} GFLOPs", u)),
    ]
    if g.flops is None and g.flops_counted is not None:
        rows.append(("flops_counted", lambda u: num(g.flops_counted / 1e9, "{:.2f} GFLOPs", u)))
    ga = None if g.flops_analytic is None else g.flops_analytic / 1e9
    ge = None if g.flops_elementwise is None else g.flops_elementwise / 1e9
    mfu = None if g.mfu is None else 100 * g.mfu
    cov = None if g.flop_coverage is None else 100 * g.flop_coverage
    if ga:  # only models with analytic (SSM scan) FLOPs
        rows.append(("flops_analytic", lambda u: num(ga, "{:.2f} GFLOPs", u)))
    rows += [
        ("flops_elementwise", lambda u: num(ge, "{:.2f} GFLOPs", u)),
        (
            "effective_tflops",
            lambda u: (
                num(g.effective_tflops, "{:.2f} TFLOP/s", u) + (f" (/{g.effective_basis})" if g.effective_basis else "")
            ),
        ),
        ("kernel_tflops", lambda u: num(g.kernel_tflops, "{:.2f} TFLOP/s", u)),
        (
            "mfu",
            lambda u: (
                num(mfu, "{:.1f} %", u)
                + (f" (peak {g.peak_tflops:.0f} TFLOP/s {g.dtype})" if g.peak_tflops and g.dtype else "")
            ),
        ),
        ("flop_coverage", lambda u: num(cov, "{:.1f} %", u)),
        ("peak_tbps", lambda u: num(g.peak_tbps, "{:.2f} TB/s", u)),
        ("attention_flops", f"{g.attention_flops}, backward {g.attention_backward:g}× forward"),
        ("unattributed_ms", f"{g.unattributed_ms:.3f} ms"),
        ("attribution", r.attribution),
    ]
    return rows


SECTION = SectionSpec(
    key="general",
    compute=compute,
    needs=("blocks",),
    table=TableSpec(
        title="general",
        rows=_rows,
        layout="kv",
        # CSV names the columns "key" and "value".
        columns=(
            Column("", lambda row, _u: row[0], csv="key"),
            Column("", kv_value),
        ),
        label_keys=True,
    ),
)
