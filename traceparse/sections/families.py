"""Kernel families: GPU time by what the kernels do (GEMM, attention, elementwise, …), split by the
kind of block they ran in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from traceparse.kernels import FAMILIES
from traceparse.report import FamilyRow, Report
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms
from traceparse.sections.context import Context

OUTSIDE_BLOCKS = "outside blocks"
OUTSIDE = (OUTSIDE_BLOCKS, "none")  # the label for work outside every block (older reports: "none")


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[FamilyRow]:
    items, n_steps, kernel_us = ctx.attr.items, ctx.n_steps, ctx.kernel_us
    # Block kind per item as a small int (0: outside blocks): comparing ints, not strings.
    kind_names = [OUTSIDE_BLOCKS, *sorted(set(ctx.blocks.kinds.values()))]
    kind_code = np.zeros(len(ctx.block_of_call) + 1, np.int64)  # the pad slot, read at call -1: 0
    for b, kind in ctx.blocks.kinds.items():
        kind_code[np.flatnonzero(ctx.block_of_call == b)] = kind_names.index(kind)
    kind_of_item = kind_code[items.call]
    rows = []
    for f_i, family in enumerate(FAMILIES):
        sel = ctx.in_steps & (ctx.fam == f_i)
        us = float(items.dur[sel].sum()) / n_steps
        if us <= 0 and not sel.any():
            continue
        by_kind = {
            kind_names[k]: ms(float(items.dur[sel & (kind_of_item == k)].sum()) / n_steps)
            for k in np.unique(kind_of_item[sel]).tolist()
        }
        rows.append(
            FamilyRow(
                family,
                ms(us),
                float(sel.sum()) / n_steps,
                100.0 * us / kernel_us if kernel_us else 0.0,
                dict(sorted(by_kind.items())),
            )
        )
    rows.sort(key=lambda r: -r.kernel_ms)
    return rows


def _kind_columns(report: Report) -> Sequence[Column]:
    """One column per block kind, alphabetical."""
    kinds = sorted({k for f in report.kernel_families for k in f.by_block_kind})
    return [_kind_column(k) for k in kinds]


def _kind_column(kind: str) -> Column:
    return Column(f"{kind} ms", lambda f, _u: f"{f.by_block_kind.get(kind, 0.0):.3f}")


def charts(report: Report, _analysis: object) -> list[ChartData]:
    rows = report.kernel_families
    if not rows:
        return []
    kinds = sorted({k for r in rows for k in r.by_block_kind}, key=lambda k: (k in OUTSIDE, k))
    return [
        ChartData(
            "kernel_families",
            "GPU time by kernel family, split by block kind",
            "kernel_families",
            {
                "families": [r.family for r in rows],
                "kernel_ms": [r.kernel_ms for r in rows],
                "share_pct": [r.share_pct for r in rows],
                "kinds": kinds,
                "ms": {k: [r.by_block_kind.get(k, 0.0) for r in rows] for k in kinds},
            },
        )
    ]


SECTION = SectionSpec(
    key="kernel_families",
    compute=compute,
    table=TableSpec(
        title="families",
        rows=lambda r, _lang: r.kernel_families,
        columns=(
            Column("family", lambda f, _u: f.family),
            Column("kernel ms", lambda f, _u: f"{f.kernel_ms:.3f}"),
            Column("share %", lambda f, _u: f"{f.share_pct:.1f}"),
            Column("count/step", lambda f, _u: f"{f.count:g}"),
        ),
        extra_columns=_kind_columns,
    ),
    charts=charts,
)
