"""Align two sides row by row and tell a change from noise.

Noise: a row's time moves from step to step, so a difference smaller than that movement says
nothing. Each row's threshold is the larger of its step-to-step range (max − min over the steps) on
side A and on side B — a side known only by its means (a saved report, one step) gets its steps'
relative kernel-time range times the row's time — and of a floor (`min_pct` of the row's time,
`min_ms`): two processes differ by more than the steps of one (clocks, allocations), and a
sub-microsecond difference is below the timestamps' resolution. A row is a regression when B is
slower than A by more than its threshold, an improvement when faster by more, else within noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from traceparse.diff.side import DIFF_SCHEMA, DIMENSIONS, Row, Side, Table

if TYPE_CHECKING:
    import pandas as pd

# The floor (see the module docstring). Measured on two captures of the same model and settings
# (Llama-3.1-8B widths, 4 layers, sdpa, H200, two processes): rows differed by up to 3.7 % and
# 3.4 µs per step beyond their steps' range (o_proj GEMMs, a 2 µs memset); 2 % and 5 µs together
# leave none of them flagged, and flag every attention module of an eager-vs-sdpa pair.
MIN_PCT = 2.0
MIN_MS = 0.005
TOP_N = 10
# Statuses of a row.
REGRESSION, IMPROVEMENT, NOISE = "regression", "improvement", "within noise"
ADDED, REMOVED, UNLISTED = "added", "removed", "not listed"
# The run facts shown side by side (and flagged where they differ).
RUN_FIELDS = ("model", "model_class", "device", "dtype", "mode", "seq_len", "batch_size", "num_blocks", "steps")


@dataclass(frozen=True)
class Change:
    """One aligned row: A and B per profiler step, the difference, and whether it is noise."""

    key: tuple[Any, ...]
    status: str
    a_ms: float | None
    b_ms: float | None
    delta_ms: float | None  # b − a
    ratio: float | None  # b / a
    noise_ms: float | None
    flops_a: float | None = None
    flops_b: float | None = None
    tflops_a: float | None = None
    tflops_b: float | None = None
    inclusive_a: float | None = None  # modules and types: inclusive ms beside the self ms compared
    inclusive_b: float | None = None
    family: str | None = None  # blocks: the kernel family whose time moved most …
    family_delta_ms: float | None = None  # … and by how much


@dataclass(frozen=True)
class Metric:
    """One headline figure, A → B. `better`: "lower", "higher" or None (FLOPs: no direction)."""

    name: str
    unit: str
    a: float | None
    b: float | None
    delta: float | None
    ratio: float | None
    noise: float | None
    status: str | None
    better: str | None


@dataclass(frozen=True)
class Diff:
    a: Mapping[str, Any]  # label, kind and the run facts of each side
    b: Mapping[str, Any]
    headline: tuple[Metric, ...]
    tables: Mapping[str, tuple[Change, ...]]
    complete: Mapping[str, bool]  # per table: both sides list every row
    top_table: str | None  # the table the top regressions/improvements come from
    regressions: tuple[Change, ...]
    improvements: tuple[Change, ...]
    gate: Metric | None  # the time --fail-above compares
    min_pct: float
    min_ms: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def failed(self, pct: float) -> bool:
        """The gated time got slower by more than pct % and by more than its noise."""
        g = self.gate
        return bool(g and g.status == REGRESSION and g.ratio is not None and (g.ratio - 1.0) * 100.0 > pct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "a": dict(self.a),
            "b": dict(self.b),
            "noise": {"min_pct": self.min_pct, "min_ms": self.min_ms},
            "headline": [asdict(m) for m in self.headline],
            "gate": asdict(self.gate) if self.gate else None,
            "top_table": self.top_table,
            "regressions": [_change_dict(self.top_table, c) for c in self.regressions],
            "improvements": [_change_dict(self.top_table, c) for c in self.improvements],
            "tables": {k: [_change_dict(k, c) for c in rows] for k, rows in self.tables.items()},
            "complete": dict(self.complete),
            "notes": list(self.notes),
        }

    def frame(self, table: str) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([_change_dict(table, c) for c in self.tables.get(table, ())])

    @property
    def headline_df(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(m) for m in self.headline])

    @property
    def blocks_df(self) -> pd.DataFrame:
        return self.frame("blocks")

    @property
    def module_types_df(self) -> pd.DataFrame:
        return self.frame("module_types")

    @property
    def modules_df(self) -> pd.DataFrame:
        return self.frame("modules")

    @property
    def kernel_families_df(self) -> pd.DataFrame:
        return self.frame("kernel_families")

    @property
    def operators_df(self) -> pd.DataFrame:
        return self.frame("operators")

    @property
    def kernels_df(self) -> pd.DataFrame:
        return self.frame("kernels")

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"headline": self.headline_df, **{k: self.frame(k) for k in self.tables}}


def _change_dict(table: str | None, c: Change) -> dict[str, Any]:
    """The key spelled out by its field names (blocks: index, kind), then the figures."""
    names = DIMENSIONS.get(table or "", ())
    out: dict[str, Any] = dict(zip(names, c.key, strict=False)) if len(names) == len(c.key) else {"key": list(c.key)}
    out.update({k: v for k, v in asdict(c).items() if k != "key"})
    return out


def _rel_range(values: Iterable[float | None]) -> float:
    """(max − min) / mean of a side's per-step values; 0 with fewer than two."""
    v = [float(x) for x in values if isinstance(x, int | float)]
    if len(v) < 2 or sum(v) <= 0:
        return 0.0
    return (max(v) - min(v)) / (sum(v) / len(v))


def _spread(row: Row | None, rel: float) -> float:
    if row is None:
        return 0.0
    if row.steps is not None and len(row.steps) >= 2:
        return max(row.steps) - min(row.steps)
    return rel * row.ms


def _status(delta: float, noise: float, better: str | None = "lower") -> str:
    if better is None or abs(delta) <= noise:
        return NOISE
    worse = delta > 0 if better == "lower" else delta < 0
    return REGRESSION if worse else IMPROVEMENT


def _tflops(flops: float | None, ms: float | None) -> float | None:
    return flops / (ms * 1e9) if flops is not None and ms else None


@dataclass(frozen=True)
class _Noise:
    rel_a: float
    rel_b: float
    min_pct: float
    min_ms: float

    def of(self, ra: Row | None, rb: Row | None) -> float:
        base = max(ra.ms if ra else 0.0, rb.ms if rb else 0.0)
        return max(_spread(ra, self.rel_a), _spread(rb, self.rel_b), self.min_pct / 100.0 * base, self.min_ms)


def _align(name: str, ta: Table | None, tb: Table | None, noise: _Noise) -> tuple[Change, ...]:
    a = ta.by_key() if ta else {}
    b = tb.by_key() if tb else {}
    keys = list(a) + [k for k in b if k not in a]
    out = []
    for k in keys:
        ra, rb = a.get(k), b.get(k)
        out.append(_change(ra, rb, noise, ta, tb))
    if name == "blocks":
        out.sort(key=lambda c: (c.key[0], str(c.key[1])))
    else:  # what moved most first; rows on one side only by their time
        out.sort(key=lambda c: -abs(c.delta_ms if c.delta_ms is not None else (c.a_ms or c.b_ms or 0.0)))
    return tuple(out)


def _change(ra: Row | None, rb: Row | None, noise: _Noise, ta: Table | None, tb: Table | None) -> Change:
    key = (ra or rb).key  # type: ignore[union-attr]  # one of the two exists
    inc_a = ra.inclusive_ms if ra else None
    inc_b = rb.inclusive_ms if rb else None
    fa, fb = (ra.flops if ra else None), (rb.flops if rb else None)
    # TFLOP/s over the time the FLOPs belong to: inclusive for modules and types.
    tfa = _tflops(fa, inc_a if inc_a is not None else (ra.ms if ra else None))
    tfb = _tflops(fb, inc_b if inc_b is not None else (rb.ms if rb else None))
    if ra is None or rb is None:
        # Missing from a side that lists only its top rows is not missing from the run.
        partial = (ra is None and ta is not None and not ta.complete) or (
            rb is None and tb is not None and not tb.complete
        )
        status = UNLISTED if partial else (ADDED if ra is None else REMOVED)
        return Change(key, status, ra.ms if ra else None, rb.ms if rb else None, None, None, None,
                      fa, fb, tfa, tfb, inc_a, inc_b)  # fmt: skip
    delta = rb.ms - ra.ms
    thr = noise.of(ra, rb)
    family, fam_delta = _moved_family(ra, rb)
    return Change(
        key, _status(delta, thr), ra.ms, rb.ms, delta, rb.ms / ra.ms if ra.ms else None, thr,
        fa, fb, tfa, tfb, inc_a, inc_b, family, fam_delta,
    )  # fmt: skip


def _moved_family(ra: Row, rb: Row) -> tuple[str | None, float | None]:
    if ra.families is None or rb.families is None:
        return None, None
    deltas = {f: rb.families.get(f, 0.0) - ra.families.get(f, 0.0) for f in set(ra.families) | set(rb.families)}
    if not deltas:
        return None, None
    fam = max(sorted(deltas), key=lambda f: abs(deltas[f]))
    return fam, deltas[fam]


def _metric(name: str, unit: str, a: float | None, b: float | None, better: str | None, noise: float | None) -> Metric:
    if a is None or b is None:
        return Metric(name, unit, a, b, None, None, None, None, better)
    delta = b - a
    thr = noise if noise is not None else 0.0
    return Metric(name, unit, a, b, delta, b / a if a else None, thr, _status(delta, thr, better), better)


def _headline(sa: Side, sb: Side, min_pct: float) -> tuple[tuple[Metric, ...], Metric | None]:
    ga, gb = sa.general, sb.general
    steps_a, steps_b = sa.steps, sb.steps

    def col(steps: Sequence[Mapping[str, Any]], key: str) -> list[float | None]:
        return [s.get(key) for s in steps]

    def thr(rel_a: float, rel_b: float, a: float | None, b: float | None) -> float | None:
        if a is None or b is None:
            return None
        base = max(abs(a), abs(b))
        return max(rel_a * abs(a), rel_b * abs(b), min_pct / 100.0 * base)

    wall = (_rel_range(col(steps_a, "wall_ms")), _rel_range(col(steps_b, "wall_ms")))
    kern = (_rel_range(col(steps_a, "kernel_ms")), _rel_range(col(steps_b, "kernel_ms")))
    busy = (_rel_range(col(steps_a, "gpu_busy_ms")), _rel_range(col(steps_b, "gpu_busy_ms")))
    plain_key = "forward_ms_uninstrumented"
    if ga.get("mode") in ("train", "generate") or gb.get("mode") in ("train", "generate"):
        plain_key = "step_ms_uninstrumented"

    def m(name: str, unit: str, key: str, better: str | None, rel: tuple[float, float]) -> Metric:
        a, b = ga.get(key), gb.get(key)
        return _metric(name, unit, a, b, better, thr(*rel, a, b))

    plain_name = "forward without profiler" if plain_key.startswith("forward") else "step without profiler"
    # The uninstrumented time is a median of runs the trace does not hold: its noise is taken from
    # the profiled steps' wall-time range, the closest measure of the same run's variation.
    plain = m(plain_name, "ms", plain_key, "lower", wall)
    step_wall = m("step wall (profiled)", "ms", "wall_ms", "lower", wall)
    rows = [
        step_wall,
        plain,
        m("GPU kernel time", "ms", "kernel_ms", "lower", kern),
        m("GPU busy", "ms", "gpu_busy_ms", "lower", busy),
        _idle(ga, gb),
        m("FLOPs", "GFLOP", "flops", None, (0.0, 0.0)),
        m("effective TFLOP/s", "TFLOP/s", "effective_tflops", "higher", wall),
        m("kernel TFLOP/s", "TFLOP/s", "kernel_tflops", "higher", busy),
        m("MFU", "%", "mfu", "higher", wall),
    ]
    rows = [_scaled(r, 1e-9) if r.name == "FLOPs" else _scaled(r, 100.0) if r.name == "MFU" else r for r in rows]
    gate = plain if plain.delta is not None else step_wall if step_wall.delta is not None else None
    return tuple(rows), gate


def _idle(ga: Mapping[str, Any], gb: Mapping[str, Any]) -> Metric:
    """Idle share in percentage points; within noise under one point (the idle share follows the
    host's launch cadence, which moves by about that much between steps)."""
    return _metric("GPU idle", "%", ga.get("gpu_idle_pct"), gb.get("gpu_idle_pct"), "lower", 1.0)


def _scaled(mt: Metric, k: float) -> Metric:
    def s(v: float | None) -> float | None:
        return v * k if v is not None else None

    return Metric(mt.name, mt.unit, s(mt.a), s(mt.b), s(mt.delta), mt.ratio, s(mt.noise), mt.status, mt.better)


def _run_facts(side: Side) -> dict[str, Any]:
    facts: dict[str, Any] = {"label": side.label, "kind": side.kind}
    facts.update({k: side.general.get(k) for k in RUN_FIELDS})
    return facts


def compare(sa: Side, sb: Side, min_pct: float = MIN_PCT, min_ms: float = MIN_MS, top: int = TOP_N) -> Diff:
    rel_a = _rel_range(s.get("kernel_ms") for s in sa.steps)
    rel_b = _rel_range(s.get("kernel_ms") for s in sb.steps)
    noise = _Noise(rel_a, rel_b, min_pct, min_ms)
    tables: dict[str, tuple[Change, ...]] = {}
    complete: dict[str, bool] = {}
    for name in DIMENSIONS:
        ta, tb = sa.tables.get(name), sb.tables.get(name)
        if ta is None and tb is None:
            continue
        if (ta is None or tb is None) and name != "blocks":
            continue  # one side cannot tell (a report holds no kernel names): nothing to align
        tables[name] = _align(name, ta, tb, noise)
        complete[name] = bool(ta and ta.complete and tb and tb.complete)
    top_table = next((t for t in ("modules", "operators", "kernels") if tables.get(t)), None)
    rows = tables.get(top_table or "", ())
    # A row only in B is a regression by its whole time, a row only in A an improvement.
    regressions = sorted((c for c in rows if c.status in (REGRESSION, ADDED)), key=lambda c: -_signed(c))[:top]
    improvements = sorted((c for c in rows if c.status in (IMPROVEMENT, REMOVED)), key=_signed)[:top]
    headline, gate = _headline(sa, sb, min_pct)
    return Diff(
        _run_facts(sa), _run_facts(sb), headline, tables, complete, top_table,
        tuple(regressions), tuple(improvements), gate, min_pct, min_ms, tuple(_notes(sa, sb, complete)),
    )  # fmt: skip


def _signed(c: Change) -> float:
    """Δ ms, or for a row on one side only, its time with the sign of the change."""
    if c.delta_ms is not None:
        return c.delta_ms
    return c.b_ms if c.b_ms is not None else -(c.a_ms or 0.0)


def _notes(sa: Side, sb: Side, complete: Mapping[str, bool]) -> list[str]:
    notes = []
    for tag, side in (("A", sa), ("B", sb)):
        if side.kind == "report":
            notes.append(
                f"{tag} is a saved report: its modules are its 20 slowest (others 'not listed'), no kernel "
                "names, and its rows' noise is estimated from its steps' kernel-time range"
            )
        n = side.general.get("steps")
        if isinstance(n, int) and n < 2:
            notes.append(f"{tag} has {n} profiler step: no step-to-step spread, only the noise floor applies")
    if sa.general.get("steps") != sb.general.get("steps"):
        notes.append("the two runs have different step counts: every figure is per profiler step")
    differ = [k for k in RUN_FIELDS[:-1] if k != "model_class" and sa.general.get(k) != sb.general.get(k)]
    if differ:
        notes.append(f"the runs differ in {', '.join(differ)}: rows are aligned by block, module and kernel names")
    return notes
