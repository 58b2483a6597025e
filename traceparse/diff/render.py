"""Lay out a diff: terminal table, Markdown (a PR comment), JSON (`traceparse.diff/1`).

Every format shows the same sections (`sections()`), built once: the runs side by side, the
headline, the top regressions and improvements, then each aligned table with its most-changed rows
first (blocks in index order). The JSON holds every row of every table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from traceparse.diff.compare import ADDED, IMPROVEMENT, NOISE, REGRESSION, REMOVED, RUN_FIELDS, Change, Diff, Metric

FORMATS = ("table", "markdown", "json", "html")
KERNEL_NAME_WIDTH = 72  # kernel names are C++ signatures hundreds of characters long
TABLE_TITLES = {
    "blocks": "Blocks (GPU ms per step, inclusive)",
    "module_types": "Module types (self ms per step)",
    "modules": "Modules (self ms per step)",
    "kernel_families": "Kernel families (GPU ms per step)",
    "operators": "Operators (GPU ms per step, innermost operator)",
    "kernels": "Kernels (GPU ms per step)",
}
# Markdown: sections folded under <details> (the headline, top changes and blocks stay open).
FOLDED = frozenset({"runs", "module_types", "modules", "kernel_families", "operators", "kernels"})
VERDICT = {REGRESSION: "slower", IMPROVEMENT: "faster", NOISE: "≈ noise", ADDED: "only in B", REMOVED: "only in A"}


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: str | None = None  # e.g. how many rows were left out


def _f(v: float | None, digits: int = 3, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _ratio(v: float | None) -> str:
    return "—" if v is None else f"×{v:.3f}"


def _verdict(status: str | None) -> str:
    return VERDICT.get(status or "", status or "")


def _name(key: tuple[Any, ...], table: str | None) -> tuple[str, ...]:
    if table == "blocks":
        return (str(key[0]), str(key[1]))
    if table == "kernels":
        name = str(key[0])
        return (name if len(name) <= KERNEL_NAME_WIDTH else name[: KERNEL_NAME_WIDTH - 1] + "…",)
    return tuple(str(k) for k in key)


KEY_HEADERS = {
    "blocks": ("block", "kind"),
    "module_types": ("type",),
    "modules": ("module", "class"),
    "kernel_families": ("family",),
    "operators": ("operator",),
    "kernels": ("kernel",),
}


def _gflops(c: Change) -> str:
    if c.flops_a is None and c.flops_b is None:
        return "—"
    return f"{_f(c.flops_a and c.flops_a / 1e9, 1)} → {_f(c.flops_b and c.flops_b / 1e9, 1)}"


def _tflops(c: Change) -> str:
    if c.tflops_a is None and c.tflops_b is None:
        return "—"
    return f"{_f(c.tflops_a, 1)} → {_f(c.tflops_b, 1)}"


def _moved(c: Change) -> str:
    return f"{c.family} ({_f(c.family_delta_ms, 3, True)})" if c.family else "—"


def _change_rows(table: str, rows: Sequence[Change]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    headers = (*KEY_HEADERS[table], "A ms", "B ms", "Δ ms", "ratio", "noise ± ms", "verdict")
    extra: list[tuple[str, Callable[[Change], str]]] = []
    if table in ("blocks", "modules", "module_types"):
        extra += [("GFLOPs A → B", _gflops), ("TFLOP/s A → B", _tflops)]
    if table == "blocks":
        extra.append(("moved most (Δ ms)", _moved))
    if table in ("modules", "module_types"):
        extra.append(("incl. ms A → B", lambda c: f"{_f(c.inclusive_a)} → {_f(c.inclusive_b)}"))
    out = [
        (
            *_name(c.key, table),
            _f(c.a_ms),
            _f(c.b_ms),
            _f(c.delta_ms, 3, True),
            _ratio(c.ratio),
            _f(c.noise_ms),
            _verdict(c.status),
            *(fn(c) for _, fn in extra),
        )
        for c in rows
    ]
    return (*headers, *(h for h, _ in extra)), out


def _metric_row(m: Metric) -> tuple[str, ...]:
    digits = 1 if m.unit in ("GFLOP", "TFLOP/s", "%") else 3
    unit = "pp" if m.unit == "%" else m.unit
    return (
        f"{m.name} ({m.unit})",
        _f(m.a, digits),
        _f(m.b, digits),
        _f(m.delta, digits, True) + ("" if m.delta is None else f" {unit}"),
        _ratio(m.ratio),
        _f(m.noise, digits),
        "—" if m.status is None else "—" if m.better is None else _verdict(m.status),
    )


def sections(d: Diff, top: int = 15) -> list[Section]:
    out = [
        Section(
            "runs",
            "Runs",
            ("", "A", "B", ""),
            tuple(
                (k, str(d.a.get(k)), str(d.b.get(k)), "" if d.a.get(k) == d.b.get(k) else "differs")
                for k in ("label", "kind", *RUN_FIELDS)
            ),
        ),
        Section(
            "headline",
            "Headline (per profiler step)",
            ("", "A", "B", "Δ", "ratio", "noise ±", "verdict"),
            tuple(_metric_row(m) for m in d.headline),
            _gate_line(d),
        ),
    ]
    if d.top_table:
        for key, title, rows in (
            ("regressions", "Top regressions", d.regressions),
            ("improvements", "Top improvements", d.improvements),
        ):
            headers, body = _change_rows(d.top_table, rows)
            what = TABLE_TITLES[d.top_table].split(" (")[0].lower()
            out.append(
                Section(key, f"{title} ({what}, by Δ ms)", headers, tuple(body), None if body else "none beyond noise")
            )
    for table, rows in d.tables.items():
        shown = rows if table in ("blocks", "kernel_families") else rows[:top]
        headers, body = _change_rows(table, shown)
        left = len(rows) - len(shown)
        footer = f"{left} more rows, each changed less (all in --format json)" if left else None
        if not d.complete.get(table, True):
            footer = ((footer + "; ") if footer else "") + "a saved report lists only its top rows"
        out.append(Section(table, TABLE_TITLES[table], headers, tuple(body), footer))
    notes = [*d.notes, _noise_line(d)]
    out.append(Section("notes", "Notes", ("note",), tuple((n,) for n in notes)))
    return out


def _gate_line(d: Diff) -> str | None:
    if d.gate is None:
        return None
    return f"--fail-above compares: {d.gate.name}"


def _noise_line(d: Diff) -> str:
    return (
        "noise ± of a row: the larger of its step-to-step range (max − min) in A and in B, "
        f"{d.min_pct:g} % of its time and {d.min_ms * 1e3:g} µs; a change within it is not called "
        "a regression or an improvement"
    )


def _heading(text: str, level: int, markdown: bool) -> str:
    if markdown:
        return f"{'#' * level} {text}"
    return f"{text}\n{('=' if level == 1 else '-') * len(text)}"


def title(d: Diff) -> str:
    return f"traceparse diff: {d.a.get('label')} → {d.b.get('label')}"


def _text(d: Diff, markdown: bool, top: int) -> str:
    from tabulate import tabulate

    parts = [_heading(title(d), 1, markdown), ""]
    for s in sections(d, top):
        folded = markdown and s.key in FOLDED
        if folded:  # a PR comment stays short: the detail tables open on a click
            parts.append(f"<details><summary><b>{s.title}</b></summary>")
        else:
            parts.append(_heading(s.title, 2, markdown))
        parts.append("")
        if s.key == "notes":
            parts.extend(f"- {row[0]}" for row in s.rows)
        elif s.rows:
            fmt = "github" if markdown else "simple"
            parts.append(tabulate(list(s.rows), headers=list(s.headers), tablefmt=fmt, disable_numparse=True))
        if s.footer:
            if s.rows:
                parts.append("")
            parts.append(f"_{s.footer}_" if markdown else s.footer)
        if folded:
            parts.extend(["", "</details>"])
        parts.append("")
    return "\n".join(parts)


def render_diff(d: Diff, fmt: str = "table", top: int = 15) -> str:
    if fmt == "json":
        return json.dumps(d.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "html":
        from traceparse.diff.html import render_html

        return render_html(d, top)
    return _text(d, fmt == "markdown", top)
