"""The report's tables as (title, headers, rows), laid out from the sections' declarations
(`traceparse.sections`): computed once for every text format and the HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traceparse.render.i18n import col, t
from traceparse.report import Report
from traceparse.sections import SECTIONS
from traceparse.sections.base import Layout


@dataclass(frozen=True)
class Section:
    """One section's table in the report's language, ready to lay out."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[Any]]
    layout: Layout = "grid"
    csv_headers: tuple[str, ...] = ()  # where a header is blank, the column's CSV name


def _cpu_words(text: str) -> str:
    """A CPU-only trace times CPU operators: its labels say CPU where they say GPU."""
    return text.replace("GPU", "CPU").replace("gpu", "cpu")


def label(lang: str, key: str, cpu: bool, **fmt: object) -> str:
    """A heading or row label; in a CPU-only trace its "@cpu" wording, else GPU said as CPU."""
    if cpu:
        special = t(lang, f"{key}@cpu", **fmt)
        return special if special != f"{key}@cpu" else _cpu_words(t(lang, key, **fmt))
    return t(lang, key, **fmt)


def sections(r: Report, lang: str = "en") -> list[Section]:
    """The tables this report shows, in display order (the notes, a list, last)."""
    unknown = t(lang, "unknown")
    cpu = r.attribution == "cpu"
    out = []
    for spec in SECTIONS:
        table = spec.table
        if table is None or not table.shown(r):
            continue
        columns = (*table.columns, *table.extra_columns(r))
        headers = [col(lang, c.header) for c in columns]
        if cpu:
            headers = [_cpu_words(h) for h in headers]
        rows = [[c.cell(row, unknown) for c in columns] for row in table.rows(r, lang)]
        if table.label_keys:
            rows = [[label(lang, row[0], cpu), *row[1:]] for row in rows]
        out.append(
            Section(
                key=spec.key,
                title=label(lang, table.title, cpu, **table.title_args(r)),
                headers=headers,
                rows=rows,
                layout=table.layout,
                csv_headers=tuple(h or c.csv for h, c in zip(headers, columns, strict=True)),
            )
        )
    return out
