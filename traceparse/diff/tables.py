"""A trace's tables for the diff, every row with its time in each profiler step.

The report averages over steps; the diff also needs each step's value, because a row's step-to-step
spread is what tells a change from noise. Each table sums the same GPU items the report does (items
inside a step), so a row's mean equals the report's figure for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.attribute import factorize
from traceparse.diff.side import Row, Table
from traceparse.kernels import FAMILIES
from traceparse.rates import flops_known
from traceparse.sections import make_context

if TYPE_CHECKING:
    from traceparse.api import Analysis
    from traceparse.sections.context import Context

NO_OPERATOR = "(no operator)"


def _per_step(code: np.ndarray, step: np.ndarray, dur: np.ndarray, n: int, n_steps: int) -> np.ndarray:
    """(n × n_steps) matrix of ms: the durations (µs) summed by code and step."""
    if not code.size:
        return np.zeros((n, n_steps))
    flat = np.bincount(code * n_steps + step, weights=dur, minlength=n * n_steps)
    return flat.reshape(n, n_steps) / 1e3


def _steps(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def tables_of(analysis: Analysis) -> dict[str, Table]:
    ctx = make_context(analysis.trace, analysis.attribution, analysis.flops, analysis.report.general.peak_tflops)
    attr, n_steps = ctx.attr, ctx.n_steps
    items, ev = attr.items, attr.index.events
    keep = ctx.in_steps
    step, dur = items.step[keep].astype(np.int64), items.dur[keep]
    tables = {"blocks": _blocks(ctx, analysis)}
    if len(attr.calls) and attr.mode in ("scopes", "with_stack"):
        tables.update(_modules(ctx))
    fam = ctx.fam[keep].astype(np.int64)
    tables["kernel_families"] = _simple(fam, [(f,) for f in FAMILIES], step, dur, n_steps)
    kernel_code, kernel_names = factorize(ev.name[items.event_row[keep]].tolist())
    tables["kernels"] = _simple(kernel_code, [(ev.names[int(k)],) for k in kernel_names], step, dur, n_steps)
    op = items.op[keep]
    forest = attr.index.forest
    op_name = np.where(op >= 0, ev.name[forest.rows[np.where(op >= 0, op, 0)]], -1)
    op_code, op_ids = factorize(op_name.tolist())
    tables["operators"] = _simple(
        op_code, [(ev.names[int(o)] if o >= 0 else NO_OPERATOR,) for o in op_ids], step, dur, n_steps
    )
    return tables


def _simple(code: np.ndarray, keys: list[tuple[Any, ...]], step: np.ndarray, dur: np.ndarray, n_steps: int) -> Table:
    mat = _per_step(code, step, dur, len(keys), n_steps)
    counts = np.bincount(code, minlength=len(keys)) / n_steps if code.size else np.zeros(len(keys))
    rows = [
        Row(keys[k], float(mat[k].mean()), _steps(mat[k]), calls=float(counts[k]))
        for k in range(len(keys))
        if counts[k] > 0
    ]
    rows.sort(key=lambda r: -r.ms)
    return Table(tuple(rows))


def _blocks(ctx: Context, analysis: Analysis) -> Table:
    report_rows = {b.index: b for b in analysis.report.blocks}
    if not ctx.by_block:  # inferred blocks (no module events): the report's means, no steps
        return Table(tuple(Row((b.index, b.kind), b.gpu_ms, flops=b.flops) for b in analysis.report.blocks))
    items, n_steps = ctx.attr.items, ctx.n_steps
    keep = ctx.in_steps & (items.call >= 0)
    block = np.full(len(items), -1, np.int64)
    block[keep] = ctx.block_of_call[items.call[keep]]
    keep &= block >= 0
    indices = sorted(ctx.by_block)
    slot = {b: i for i, b in enumerate(indices)}
    code = np.array([slot.get(int(b), -1) for b in block[keep]], np.int64)
    ok = code >= 0
    step, dur = items.step[keep][ok].astype(np.int64), items.dur[keep][ok]
    code = code[ok]
    mat = _per_step(code, step, dur, len(indices), n_steps)
    nf = len(FAMILIES)
    fam = ctx.fam[keep][ok].astype(np.int64)
    fam_us = np.bincount(code * nf + fam, weights=dur, minlength=len(indices) * nf).reshape(len(indices), nf)
    by_fam = fam_us / n_steps / 1e3
    rows = []
    for i, b in enumerate(indices):
        rep = report_rows.get(b)
        families = {FAMILIES[f]: float(by_fam[i, f]) for f in range(nf) if by_fam[i, f] > 0}
        rows.append(
            Row(
                (b, ctx.blocks.kinds.get(b, "other")),
                float(mat[i].mean()),
                _steps(mat[i]),
                flops=rep.flops if rep is not None else None,
                families=families,
            )
        )
    return Table(tuple(rows))


def _modules(ctx: Context) -> dict[str, Table]:
    """Modules by qualified name and class, and module types: self time per step (where the time
    is spent: a parent's inclusive time would rank every ancestor of a change above it), with the
    inclusive time and the inclusive FLOPs beside it."""
    attr, n_steps = ctx.attr, ctx.n_steps
    calls, items = attr.calls, attr.items
    keep = ctx.in_steps & (items.call >= 0)
    self_mat = _per_step(items.call[keep], items.step[keep].astype(np.int64), items.dur[keep], len(calls), n_steps)
    incl_mat = calls.inclusive(self_mat)
    incl_mean = incl_mat.mean(axis=1)
    at = np.flatnonzero(ctx.call_in_steps)
    out = {}
    # A type's inclusive time counts a call nested in a call of its own type once (as the report).
    cls_code, _ = calls.class_codes
    nested = np.zeros(len(calls), bool)
    has = calls.parent >= 0
    nested[has] = cls_code[calls.parent[has]] == cls_code[has]
    for name, keys in (
        ("modules", [(str(calls.qual[c]), str(calls.cls[c])) for c in at]),
        ("module_types", [(str(calls.cls[c]),) for c in at]),
    ):
        code, distinct = factorize(keys)
        n = len(distinct)
        slf = np.zeros((n, n_steps))
        np.add.at(slf, code, self_mat[at])
        outer = ~nested[at] if name == "module_types" else np.ones(len(at), bool)
        incl = np.bincount(code[outer], weights=incl_mean[at][outer], minlength=n)
        fl = np.bincount(code[outer], weights=ctx.call_flops[at][outer], minlength=n)
        unc = np.bincount(code[outer], weights=ctx.call_uncounted_us[at][outer], minlength=n) / 1e3
        counts = np.bincount(code, minlength=n) / n_steps
        rows = []
        for k in range(n):
            known = ctx.has_shapes and flops_known(float(unc[k]), float(incl[k]))
            rows.append(
                Row(
                    tuple(distinct[k]),
                    float(slf[k].mean()),
                    _steps(slf[k]),
                    flops=float(fl[k]) if known else None,
                    inclusive_ms=float(incl[k]),
                    calls=float(counts[k]),
                )
            )
        rows.sort(key=lambda r: -r.ms)
        out[name] = Table(tuple(rows))
    return out
