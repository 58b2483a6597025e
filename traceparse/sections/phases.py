"""Phases: GPU time and FLOPs of forward, backward, loss, optimizer… (prefill and decode in a
generation trace), and each block's share of every phase (JSON only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.report import PhaseRow, Report
from traceparse.scopes import PHASE_NAMES
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms, num
from traceparse.sections.context import Context


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[PhaseRow]:
    items, flops, n_steps = ctx.attr.items, ctx.flops, ctx.n_steps
    tensor_in_steps = np.isin(flops.kind, ctx.tensor_idx) & (flops.step >= 0)
    rows = []
    for p, pname in enumerate(PHASE_NAMES):
        sel = ctx.in_steps & (items.phase == p)
        if not sel.any():
            continue
        p_incl = ctx.attr.calls.inclusive(ctx.per_step_self(p))
        pf_mask = tensor_in_steps & (flops.phase == p) & (flops.call >= 0)
        p_flops = ctx.attr.calls.inclusive(
            np.bincount(flops.call[pf_mask], weights=flops.flops[pf_mask], minlength=len(ctx.attr.calls)) / n_steps
        )
        total_p_flops = float(flops.flops[tensor_in_steps & (flops.phase == p)].sum())
        rows.append(
            PhaseRow(
                phase=pname,
                kernel_ms=ms(float(items.dur[sel].sum()) / n_steps),
                flops=total_p_flops / n_steps if ctx.has_shapes else None,
                unattributed_ms=ms(float(items.dur[sel & (items.call < 0)].sum()) / n_steps),
                blocks=[
                    {
                        "index": b,
                        "gpu_ms": ms(float(p_incl[cs].sum())),
                        "flops": float(p_flops[cs].sum()) if ctx.has_shapes else None,
                    }
                    for b, cs in sorted(ctx.by_block.items())
                ],
            )
        )
    if ctx.is_generation:  # prefill and decode take the forward's place
        rows = ctx.generation[1] + [p for p in rows if p.phase != "forward"]
    return rows


def charts(report: Report, _analysis: object) -> list[ChartData]:
    if len(report.phases) <= 1:
        return []
    data: dict[str, Any] = {
        "phases": [p.phase for p in report.phases],
        "kernel_ms": [p.kernel_ms for p in report.phases],
        "unattributed_ms": [p.unattributed_ms for p in report.phases],
    }
    gen = report.generation or {}
    per_token = gen.get("decode_block_ms") or []
    if per_token:
        kinds = {b.index: b.kind for b in report.blocks}
        data["decode_blocks"] = [int(r["index"]) for r in per_token]
        data["decode_ms_per_token"] = [float(r["ms_per_token"]) for r in per_token]
        data["decode_kinds"] = [kinds.get(int(r["index"]), "other") for r in per_token]
    return [ChartData("phases", "GPU kernel time by phase", "phases", data)]


SECTION = SectionSpec(
    key="phases",
    compute=compute,
    table=TableSpec(
        title="phases",
        shown=lambda r: len(r.phases) > 1,
        rows=lambda r, _lang: r.phases,
        columns=(
            Column("phase", lambda p, _u: p.phase),
            Column("kernel ms", lambda p, _u: f"{p.kernel_ms:.3f}"),
            Column("GFLOPs", lambda p, u: num(None if p.flops is None else p.flops / 1e9, "{:.2f}", u)),
            Column("unattributed ms", lambda p, _u: f"{p.unattributed_ms:.3f}"),
        ),
    ),
    charts=charts,
)
