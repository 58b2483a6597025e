"""What a report section declares: how it computes its rows, its table, its charts.

A section is one module under `traceparse/sections/` holding one `SectionSpec`: its JSON key (the
`Report` field it fills), a `compute` that turns the shared `Context` into frozen rows, and, for
the renderers, a `TableSpec` (title, columns with units in their headers, i18n keys) and the data
of its charts. The renderers only read these declarations (memray's reporters: rows first, layout
second), so a new section is one new module registered in `traceparse/sections/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from traceparse.report import Report

if TYPE_CHECKING:
    from traceparse.api import Analysis
    from traceparse.sections.context import Context

# grid: a header row over rows; kv: label/value pairs, no header; list: bullet points (the notes).
Layout = Literal["grid", "kv", "list"]


@dataclass(frozen=True)
class ChartData:
    """One chart: its file stem, title, the report section it illustrates, and the plotted numbers."""

    name: str
    title: str
    section: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One table column. `header` is the English header (units included: "gpu ms") and the key of
    its translation in `render.i18n.COLUMNS`; `cell` formats one row's value, given the word for an
    unknown value in the report's language; `csv` names the column in CSV where the header is blank."""

    header: str
    cell: Callable[[Any, str], Any]
    csv: str = "value"


@dataclass(frozen=True)
class TableSpec:
    """How a section is shown. `title` is an i18n key (`render.i18n.TEXT`), formatted with
    `title_args(report)`; `rows(report, lang)` are the row objects each column's `cell` reads;
    `shown(report)` says whether the table appears at all; `extra_columns(report)` adds columns that
    depend on the data (the kernel-family table's one column per block kind)."""

    title: str
    columns: tuple[Column, ...]
    rows: Callable[[Report, str], Sequence[Any]]
    shown: Callable[[Report], bool] = lambda _r: True
    layout: Layout = "grid"
    title_args: Callable[[Report], Mapping[str, object]] = lambda _r: {}
    extra_columns: Callable[[Report], Sequence[Column]] = lambda _r: ()
    # The first column holds i18n keys (`render.i18n.TEXT`) that the renderer translates: sections
    # do not import the renderers (which import the sections).
    label_keys: bool = False


@dataclass(frozen=True)
class SectionSpec:
    """One report section. `key` is the `Report` field (and JSON key) `compute` fills; `compute`
    reads the shared context and the values of the sections named in `needs`, computed before it.
    `table` is None for a section that is in the JSON only; `charts` returns the section's charts
    (in display order) for a report, with the Analysis when a chart needs more than the report."""

    key: str
    compute: Callable[[Context, Mapping[str, Any]], Any]
    needs: tuple[str, ...] = ()
    table: TableSpec | None = None
    charts: Callable[[Report, Analysis | None], list[ChartData]] = lambda _r, _a: []


def num(v: float | None, fmt: str = "{:.3f}", unknown: str = "unknown") -> str:
    """`v` formatted, or the word for unknown (null in the JSON) — never a made-up 0."""
    return unknown if v is None else fmt.format(v)


def integer(v: int | None, unknown: str) -> str:
    """An integer with thin-space thousands (as the seed report writes parameter counts)."""
    return unknown if v is None else f"{v:,}".replace(",", " ")


def count(v: float) -> str:
    """A count per step: whole ones with thin-space thousands (as `integer`), fractional ones as is."""
    return integer(int(v), "") if float(v).is_integer() else f"{v:g}"


def kv_value(row: tuple[str, Any], unknown: str) -> Any:
    """The value of a (label, value) row, where a value that may be unknown is a function of the
    report language's word for it."""
    v = row[1]
    return v(unknown) if callable(v) else v


def cut(text: str, width: int = 80) -> str:
    """Kernel names run to hundreds of characters (templates, fusions): cut for a table cell
    (the JSON keeps them whole)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def ms(us: float) -> float:
    return us / 1e3


def safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b
