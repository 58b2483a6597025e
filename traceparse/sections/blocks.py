"""Per-block efficiency: time, FLOPs, TFLOP/s and MFU of each repeated block (decoder layer, …).

Blocks come from the module tree (`traceparse.blocks`); a trace without module events gets blocks
inferred from its repeating kernel sequence instead (`traceparse.inferred_blocks`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.blocks import block_of_calls, find_blocks
from traceparse.inferred_blocks import inferred_rows
from traceparse.kernels import FAMILIES, item_families
from traceparse.rates import flops_known
from traceparse.report import BlockRow, Report
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, integer, ms, num, safe_div
from traceparse.sections.context import Context
from traceparse.sections.roofline_ops import roofline_of

if TYPE_CHECKING:
    from traceparse.api import Analysis


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[BlockRow]:
    params_by_block = _params_by_block(ctx.meta)
    rows: list[BlockRow] = []
    for b in sorted(ctx.by_block):
        cs = ctx.by_block[b]
        gpu_ms = ms(float(ctx.incl_all[cs].sum()))
        known = ctx.has_shapes and flops_known(float(ctx.call_uncounted_us[cs].sum()), float(ctx.incl_all[cs].sum()))
        f = float(ctx.call_flops[cs].sum()) if known else None
        tfl = safe_div(f, gpu_ms * 1e9) if f is not None and gpu_ms > 0 else None
        block_mfu = safe_div(tfl, ctx.peak)
        rows.append(
            BlockRow(
                index=b,
                name=ctx.blocks.names.get(b, str(b)),
                kind=ctx.blocks.kinds.get(b, "other"),
                gpu_ms=gpu_ms,
                self_ms=ms(float(ctx.self_all[cs].sum())),
                forward_ms=ms(float(ctx.incl_fwd[cs].sum())),
                backward_ms=ms(float(ctx.incl_bwd[cs].sum())),
                share_pct=100.0 * gpu_ms / ms(ctx.kernel_us) if ctx.kernel_us else 0.0,
                flops=f,
                tflops=tfl,
                mfu=block_mfu if block_mfu is None or block_mfu <= 1.0 else None,
                flop_coverage=safe_div(float(ctx.call_cov_us[cs].sum()), float(ctx.incl_all[cs].sum())),
                params=params_by_block.get(b),
                **roofline_of(ctx, cs, f),
            )
        )
    if not rows and ctx.inferred is not None:
        rows = inferred_rows(ctx.attr, ctx.flops, ctx.inferred, ctx.uncounted, ctx.kernel_us, ctx.peak)
    return rows


def _params_by_block(meta: dict[str, Any]) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for row in meta.get("modules") or []:
        if isinstance(row, dict) and isinstance(row.get("block"), int):
            out[row["block"]] += int(row.get("params") or 0)
    return dict(out)


def block_family_ms(analysis: Analysis) -> dict[int, dict[str, float]]:
    """GPU kernel time per block and kernel family, ms per profiler step (inclusive of sub-modules).

    The same items the report's block rows sum (in a step, attributed to a call inside the block),
    so the families of a block add up to its `BlockRow.gpu_ms`. The report does not hold this split
    (blocks × families), so the chart sums it from the Analysis.
    """
    attr = analysis.attribution
    calls, items, ev = attr.calls, attr.items, attr.index.events
    blocks = find_blocks(calls, analysis.trace.metadata.get("blocks_container"), analysis.attribution.inclusive_us())
    block_of_call = block_of_calls(calls, blocks.index_of_call)
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row]).astype(np.int64)
    keep = (items.step >= 0) & (items.call >= 0)
    block = np.full(len(items), -1, np.int64)
    block[keep] = block_of_call[items.call[keep]]
    keep &= block >= 0
    nf = len(FAMILIES)
    key = block[keep] * nf + fam[keep]
    us = np.bincount(key, weights=items.dur[keep]) if key.size else np.zeros(0)
    out: dict[int, dict[str, float]] = {}
    for k in np.flatnonzero(us > 0):
        b, f = divmod(int(k), nf)
        out.setdefault(b, {})[FAMILIES[f]] = float(us[k]) / attr.n_steps / 1e3
    return out


def charts(report: Report, analysis: Analysis | None) -> list[ChartData]:
    out = []
    if report.blocks and analysis is not None:
        out.append(_by_family(report, block_family_ms(analysis)))
    if any(b.tflops is not None for b in report.blocks):
        out.append(_tflops(report))
    return out


def _by_family(report: Report, by_family: dict[int, dict[str, float]]) -> ChartData:
    blocks = [b.index for b in report.blocks]
    totals = {f: sum(by_family.get(b, {}).get(f, 0.0) for b in blocks) for f in FAMILIES}
    families = [f for f in sorted(FAMILIES, key=lambda f: -totals[f]) if totals[f] > 0]
    return ChartData(
        "blocks_time_by_family",
        "GPU time per block, by kernel family",
        "blocks",
        {
            "blocks": blocks,
            "kinds": [b.kind for b in report.blocks],
            "families": families,
            "ms": {f: [by_family.get(b, {}).get(f, 0.0) for b in blocks] for f in families},
            "total_ms": [sum(by_family.get(b, {}).values()) for b in blocks],
            "report_gpu_ms": [b.gpu_ms for b in report.blocks],
        },
    )


def _tflops(report: Report) -> ChartData:
    g = report.general
    return ChartData(
        "blocks_tflops",
        "Achieved TFLOP/s per block (FLOPs / kernel time)",
        "blocks",
        {
            "blocks": [b.index for b in report.blocks],
            "kinds": [b.kind for b in report.blocks],
            "tflops": [b.tflops for b in report.blocks],
            "mfu_pct": [None if b.mfu is None else 100.0 * b.mfu for b in report.blocks],
            "peak_tflops": g.peak_tflops,
            "dtype": g.dtype,
            "device": g.device,
            "model_kernel_tflops": g.kernel_tflops,
        },
    )


SECTION = SectionSpec(
    key="blocks",
    compute=compute,
    table=TableSpec(
        title="blocks",
        shown=lambda r: bool(r.blocks),
        rows=lambda r, _lang: r.blocks,
        columns=(
            Column("block", lambda b, _u: b.index),
            Column("kind", lambda b, _u: b.kind),
            Column("gpu ms", lambda b, _u: f"{b.gpu_ms:.3f}"),
            Column("share %", lambda b, _u: f"{b.share_pct:.1f}"),
            Column("GFLOPs", lambda b, u: num(None if b.flops is None else b.flops / 1e9, "{:.2f}", u)),
            Column("TFLOP/s", lambda b, u: num(b.tflops, "{:.2f}", u)),
            Column("MFU %", lambda b, u: num(None if b.mfu is None else 100 * b.mfu, "{:.1f}", u)),
            Column(
                "coverage %", lambda b, u: num(None if b.flop_coverage is None else 100 * b.flop_coverage, "{:.0f}", u)
            ),
            Column("params", lambda b, u: integer(b.params, u)),
            Column("TB/s", lambda b, u: num(b.tbps, "{:.2f}", u)),
            Column("FLOP/B", lambda b, u: num(b.intensity, "{:.1f}", u)),
            Column("bound", lambda b, u: b.bound or u),
            Column("roofline %", lambda b, u: num(b.roofline_pct, "{:.1f}", u)),
        ),
    ),
    charts=charts,
)
