"""Modules recovered under compile and CUDA graphs, and kernels that fuse several modules.

`recovered`: per source (compiled regions, graph replays), the kernel time per step and how much
of it was handed to a module below the eager call that ran it — the match rate the user needs
to trust the module table. `fusions`: the compiled kernels whose FX nodes belong to more than
one module, with the module they were given to (their common ancestor): Inductor's fusions
across module boundaries, listed instead of split by guesswork.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.recover import SOURCE_COMPILED, SOURCE_REPLAY, Recovery
from traceparse.sections.base import Column, SectionSpec, TableSpec, count, cut, ms, num
from traceparse.sections.context import Context

_SOURCES = ((SOURCE_COMPILED, "compiled regions"), (SOURCE_REPLAY, "CUDA-graph replays"))


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[dict[str, Any]]:
    rec: Recovery | None = ctx.attr.recovery
    if rec is None or not ctx.gpu:
        return []
    dur = ctx.attr.items.dur
    rows = []
    for code, label in _SOURCES:
        sel = ctx.in_steps & (rec.source == code)
        if not sel.any():
            continue
        total = float(dur[sel].sum())
        to_module = float(dur[sel & rec.matched].sum())
        fused = float(dur[sel & (rec.fusion >= 0)].sum())
        rows.append(
            {
                "source": label,
                "kernels": float(sel.sum()) / ctx.n_steps,
                "kernel_ms": ms(total) / ctx.n_steps,
                "to_module_ms": ms(to_module) / ctx.n_steps,
                "matched_pct": 100.0 * to_module / total if total > 0 else None,
                "fused_ms": ms(fused) / ctx.n_steps,
                "share_pct": 100.0 * total / ctx.kernel_us / ctx.n_steps if ctx.kernel_us > 0 else None,
            }
        )
    return rows


def compute_fusions(ctx: Context, _done: Mapping[str, Any]) -> list[dict[str, Any]]:
    rec: Recovery | None = ctx.attr.recovery
    if rec is None or not rec.fusions or not ctx.gpu:
        return []
    sel = np.flatnonzero(ctx.in_steps & (rec.fusion >= 0))
    if not sel.size:
        return []
    per = np.bincount(rec.fusion[sel], weights=ctx.attr.items.dur[sel], minlength=len(rec.fusions))
    launches = np.bincount(rec.fusion[sel], minlength=len(rec.fusions))
    order = np.argsort(-per, kind="stable")[: ctx.top]
    return [
        {
            "kernel": rec.fusions[f].kernel,
            "modules": list(rec.fusions[f].modules),
            "given_to": rec.fusions[f].owner or "(the compiled module)",
            "count": float(launches[f]) / ctx.n_steps,
            "total_ms": ms(float(per[f])) / ctx.n_steps,
        }
        for f in order.tolist()
        if launches[f]
    ]


SECTION = SectionSpec(
    key="recovered",
    compute=compute,
    table=TableSpec(
        title="recovered",
        shown=lambda r: bool(r.recovered),
        rows=lambda r, _lang: r.recovered,
        columns=(
            Column("source", lambda x, _u: x["source"]),
            Column("kernels/step", lambda x, _u: count(x["kernels"])),
            Column("kernel ms", lambda x, _u: f"{x['kernel_ms']:.3f}"),
            Column("to modules ms", lambda x, _u: f"{x['to_module_ms']:.3f}"),
            Column("matched %", lambda x, u: num(x["matched_pct"], "{:.1f}", u)),
            Column("fused ms", lambda x, _u: f"{x['fused_ms']:.3f}"),
            Column("share %", lambda x, u: num(x["share_pct"], "{:.1f}", u)),
        ),
    ),
)

FUSIONS_SECTION = SectionSpec(
    key="fusions",
    compute=compute_fusions,
    table=TableSpec(
        title="fusions",
        title_args=lambda r: {"n": len(r.fusions)},
        shown=lambda r: bool(r.fusions),
        rows=lambda r, _lang: r.fusions,
        columns=(
            Column("kernel", lambda x, _u: cut(str(x["kernel"]))),
            Column("modules", lambda x, _u: cut(", ".join(m or "(compiled module)" for m in x["modules"]), 70)),
            Column("given to", lambda x, _u: x["given_to"]),
            Column("count/step", lambda x, _u: count(x["count"])),
            Column("total ms", lambda x, _u: f"{x['total_ms']:.3f}"),
        ),
    ),
)
