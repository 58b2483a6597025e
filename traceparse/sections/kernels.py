"""Top kernels: the GPU kernels (memcpys, memsets) by name, with the most time per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.kernels import FAMILIES
from traceparse.sections.base import Column, SectionSpec, TableSpec, count, cut, ms
from traceparse.sections.context import Context


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per kernel name: launches and time per step, mean/min/max of one launch, its family, and
    its share of all GPU item time. Empty in a CPU-only trace (no kernels)."""
    if not ctx.gpu:
        return []
    items, ev = ctx.attr.items, ctx.attr.index.events
    sel = np.flatnonzero(ctx.in_steps)
    if not sel.size:
        return []
    names = ev.name[items.event_row[sel]]
    dur = items.dur[sel].astype(np.float64)
    uniq, code = np.unique(names, return_inverse=True)
    n = uniq.size
    total = np.bincount(code, weights=dur, minlength=n)
    launches = np.bincount(code, minlength=n)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, code, dur)
    np.maximum.at(hi, code, dur)
    fam = np.zeros(n, np.int64)
    fam[code] = ctx.fam[sel]  # one name, one family
    all_us = float(dur.sum())
    order = np.lexsort((uniq, -total))[: ctx.top]
    return [
        {
            "kernel": ev.names[int(uniq[k])],
            "family": FAMILIES[int(fam[k])],
            "count": float(launches[k]) / ctx.n_steps,
            "total_ms": ms(float(total[k])) / ctx.n_steps,
            "mean_ms": ms(float(total[k]) / float(launches[k])),
            "min_ms": ms(float(lo[k])),
            "max_ms": ms(float(hi[k])),
            "share_pct": 100.0 * float(total[k]) / all_us if all_us > 0 else 0.0,
        }
        for k in order.tolist()
    ]


SECTION = SectionSpec(
    key="top_kernels",
    compute=compute,
    table=TableSpec(
        title="top_kernels",
        title_args=lambda r: {"n": len(r.top_kernels)},
        shown=lambda r: bool(r.top_kernels),
        rows=lambda r, _lang: r.top_kernels,
        columns=(
            Column("kernel", lambda k, _u: cut(str(k["kernel"]))),
            Column("family", lambda k, _u: k["family"]),
            Column("count/step", lambda k, _u: count(k["count"])),
            Column("total ms", lambda k, _u: f"{k['total_ms']:.3f}"),
            Column("mean ms", lambda k, _u: f"{k['mean_ms']:.4f}"),
            Column("min ms", lambda k, _u: f"{k['min_ms']:.4f}"),
            Column("max ms", lambda k, _u: f"{k['max_ms']:.4f}"),
            Column("share %", lambda k, _u: f"{k['share_pct']:.1f}"),
        ),
    ),
)
