"""Lay out the sections: table (terminal), markdown, json (the contract), csv (the JSON, tidy)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from traceparse.render.i18n import t
from traceparse.render.sections import Section, sections
from traceparse.report import Report

FORMATS = ("table", "markdown", "json", "csv")


def _heading(text: str, level: int, markdown: bool) -> str:
    if markdown:
        return f"{'#' * level} {text}\n"
    return f"{text}\n{('=' if level == 1 else '-') * len(text)}\n"


def prepare(fmt: str) -> None:
    """Import what rendering `fmt` needs, ahead of time (tabulate and its wcwidth take ~0.13 s,
    which the JSON and CSV formats never need)."""
    if fmt in ("table", "markdown"):
        import tabulate  # noqa: F401


def _body(s: Section, markdown: bool) -> list[str]:
    from tabulate import tabulate

    if s.layout == "list":
        return [f"- {row[0]}" for row in s.rows]
    if s.layout == "kv":  # no header row; Markdown needs one, so it is blank
        if markdown:
            return [tabulate(s.rows, headers=s.headers, tablefmt="github", disable_numparse=True)]
        return [tabulate(s.rows, tablefmt="plain", disable_numparse=True)]
    tablefmt = "github" if markdown else "simple"
    return [tabulate(s.rows, headers=s.headers, tablefmt=tablefmt, disable_numparse=True)]


def _text(report: Report, lang: str, markdown: bool) -> str:
    parts = [_heading(report.general.model or report.source, 1, markdown), t(lang, "per_step", n=report.general.steps)]
    parts.append("")
    for s in sections(report, lang):
        parts.append(_heading(s.title, 2, markdown))
        parts.extend(_body(s, markdown))
        parts.append("")
    return "\n".join(parts)


CSV_COLUMNS = ("section", "row", "field", "value", "text")


def _cells(v: Any) -> tuple[Any, Any]:
    """(value, text): numbers in `value` (raw, unformatted), everything else in `text`."""
    if v is None:
        return "", ""
    if isinstance(v, bool):
        return int(v), ""
    if isinstance(v, int | float):
        return repr(v) if isinstance(v, float) else v, ""
    return "", str(v)


def _tidy_rows(section: str, rows: list[Any]) -> Iterator[list[Any]]:
    """One CSV row per (row, field); a nested dict's fields are "key.sub"; a nested list of rows
    becomes its own section "section.key" whose rows name their parent in `parent_row`."""
    nested: list[tuple[str, int, list[Any]]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            yield [section, i, "value", *_cells(row)]
            continue
        for key, v in row.items():
            if isinstance(v, dict):
                for sub, sv in v.items():
                    if not isinstance(sv, dict | list):
                        yield [section, i, f"{key}.{sub}", *_cells(sv)]
            elif isinstance(v, list):
                nested.append((key, i, v))
            else:
                yield [section, i, key, *_cells(v)]
    counter: dict[str, int] = {}
    for key, parent, sub_rows in nested:
        name = f"{section}.{key}"
        for sub in sub_rows:
            k = counter.get(name, 0)
            counter[name] = k + 1
            yield [name, k, "parent_row", parent, ""]
            yield from ([name, k, *r[2:]] for r in _tidy_rows(name, [sub]))


def _csv(report: Report) -> str:
    """The whole report as one tidy (long) CSV: section, row, field, value, text — one line per
    value, numbers raw (ms, FLOPs, counts as in the JSON contract, never formatted), so that
    `pd.read_csv` reads it and `df[df.section == "blocks"].pivot(index="row", columns="field",
    values="value")` gives a table. The keys are the JSON's, in every --lang."""
    doc = report.to_dict()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict | list)}
    w.writerows(_tidy_rows("report", [scalars]))
    for key, v in doc.items():
        if isinstance(v, dict):
            w.writerows(_tidy_rows(key, [v]))
        elif isinstance(v, list):
            w.writerows(_tidy_rows(key, v))
    return buf.getvalue()


def render(report: Report, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(report)
    return _text(report, lang, markdown=fmt == "markdown")
